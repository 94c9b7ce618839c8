cdef extern from "symtab.h" namespace "xcol" nogil:
    cdef cppclass SymTab:
        int find(const char *p, size_t n)
        void add(const char *p, size_t n, int id)
