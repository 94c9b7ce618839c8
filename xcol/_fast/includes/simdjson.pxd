# Declarations of xcol's error-code facade over simdjson On-Demand
# (xcol_sj.h).  simdjson itself is compiled from the copy that the
# installed ``pysimdjson`` package ships; nothing is vendored.

from libc.stdint cimport int64_t
from libcpp cimport bool as cbool


cdef extern from "xcol_sj.h" namespace "xsj" nogil:
    cdef cppclass Parser:
        pass

    cdef cppclass Document:
        pass

    cdef cppclass Value:
        pass

    cdef cppclass ObjCursor:
        pass

    cdef cppclass ArrCursor:
        pass

    const size_t PADDING
    const char *error_message(int code)
    const char *implementation_name()
    int iterate(Parser &p, const char *buf, size_t length, Document &doc)
    int doc_at_end(Document &doc)
    int is_type_error(int code)
    int doc_object(Document &doc, ObjCursor &c)
    int doc_array(Document &doc, ArrCursor &c)
    int val_object(Value &v, ObjCursor &c)
    int val_array(Value &v, ArrCursor &c)
    int obj_next(ObjCursor &c, const char **key, size_t *klen, Value &val)
    int arr_next(ArrCursor &c, Value &val)
    int val_raw(Value &v, const char **p, size_t *n)
    int val_str(Value &v, const char **p, size_t *n)
    int val_int64(Value &v, int64_t *out)
    int val_bool(Value &v, cbool *out)
    int val_is_null(Value &v)
