# distutils: language=c++
# Instrument-list parsers (Binance exchangeInfo, OKX and Deribit instruments)
# over simdjson On-Demand.  Control plane: one Python tuple per instrument.

from xcol._fast.includes.simdjson cimport Parser, Document, Value

cdef enum SlotKind:
    SL_ABSENT = 0       # the field was not in the object
    SL_NULL = 1         # JSON null
    SL_STR = 2          # a JSON string; p/n is its unescaped content
    SL_NUM = 3          # a bare JSON number; p/n is its raw text
    SL_OTHER = 4        # true/false, an object or an array

# One field value remembered while its object is walked (keys may come in
# any order, so a row is judged only once its object ends).
cdef struct Slot:
    const char *p
    size_t n
    int kind            # SlotKind

cdef enum MetaVenue:
    MV_AUTO = 0
    MV_BINANCE = 1
    MV_OKX = 2
    MV_DERIBIT = 3

cdef enum DecErr:
    DEC_OK = 0
    DEC_SYNTAX = 1      # not digits[.digits][e[+-]digits]
    DEC_NEGATIVE = 2

# Decimals of a number as written (``0.10`` -> 2, ``5e-05`` -> 5, ``1.5e1``
# -> 0), without converting it; the exponent saturates, so the count does too.
cdef int count_decimals(const char *p, size_t n, int *dec) noexcept nogil

cdef class _Walk:
    cdef Parser parser
    cdef Document doc
    cdef char *buf              # padded copy of the body
    cdef size_t cap
    cdef int want               # MetaVenue asked for (MV_AUTO: by shape)
    cdef object rows_b          # list of row tuples from "symbols" (or None)
    cdef object rows_o          # list from "data" (or None)
    cdef object rows_d          # list from "result" (or None)
    cdef Py_ssize_t skipped_b
    cdef Py_ssize_t skipped_o
    cdef Py_ssize_t skipped_d
    cdef object row_err_b       # str: first bad row of that list, or None
    cdef object row_err_o
    cdef object row_err_d
    cdef Slot code              # OKX "code" / Binance error "code"
    cdef Slot msg
    cdef Slot error             # Deribit "error"

    cdef int walk(self, const char *data, size_t n) except -1
    cdef _error_object(self, Value &v)
    cdef int _rows(self, Value &v, int venue) except -1
    cdef object _binance_row(self, Value &row, Py_ssize_t i)
    cdef object _plain_row(self, Value &row, Py_ssize_t i, int venue)
    cdef str _answer_error(self, int venue)
