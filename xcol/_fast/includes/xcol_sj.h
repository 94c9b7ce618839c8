/* xcol: a small error-code facade over simdjson On-Demand for Cython.
 *
 * Cython cannot express simdjson's simdjson_result<T> idiom comfortably, so
 * this header exposes plain functions that return an int: 0 on success, a
 * positive simdjson error code on failure, and for the cursor "next" calls 1
 * when an item was produced and 0 at the end.  Nothing here allocates.
 */
#ifndef XCOL_SJ_H
#define XCOL_SJ_H

#include <cstddef>
#include <cstdint>
#include <string_view>
#include "simdjson.h"

namespace xsj {

namespace od = simdjson::ondemand;
typedef od::parser Parser;
typedef od::document Document;
typedef od::value Value;

static const size_t PADDING = simdjson::SIMDJSON_PADDING;

struct ObjCursor {
    od::object_iterator it;
    od::object_iterator end;
    bool started;
};

struct ArrCursor {
    od::array_iterator it;
    od::array_iterator end;
    bool started;
};

static inline const char *error_message(int code) {
    return simdjson::error_message(static_cast<simdjson::error_code>(code));
}

static inline const char *implementation_name() {
    return simdjson::builtin_implementation()->name().data();
}

/* buf must have at least len + PADDING readable bytes. */
static inline int iterate(Parser &p, const char *buf, size_t len, Document &doc) {
    return static_cast<int>(p.iterate(buf, len, len + PADDING).get(doc));
}

/* 1 when the whole document has been consumed (no trailing content). */
static inline int doc_at_end(Document &doc) {
    return doc.at_end() ? 1 : 0;
}

/* 1 when a simdjson error means "valid JSON, wrong type" rather than bad JSON. */
static inline int is_type_error(int code) {
    return code == simdjson::INCORRECT_TYPE || code == simdjson::NUMBER_OUT_OF_RANGE ? 1 : 0;
}

static inline int doc_object(Document &doc, ObjCursor &c) {
    od::object o;
    auto err = doc.get_object().get(o);
    if (err) return static_cast<int>(err);
    err = o.begin().get(c.it);
    if (err) return static_cast<int>(err);
    err = o.end().get(c.end);
    if (err) return static_cast<int>(err);
    c.started = false;
    return 0;
}

static inline int doc_array(Document &doc, ArrCursor &c) {
    od::array a;
    auto err = doc.get_array().get(a);
    if (err) return static_cast<int>(err);
    err = a.begin().get(c.it);
    if (err) return static_cast<int>(err);
    err = a.end().get(c.end);
    if (err) return static_cast<int>(err);
    c.started = false;
    return 0;
}

static inline int val_object(Value &v, ObjCursor &c) {
    od::object o;
    auto err = v.get_object().get(o);
    if (err) return static_cast<int>(err);
    err = o.begin().get(c.it);
    if (err) return static_cast<int>(err);
    err = o.end().get(c.end);
    if (err) return static_cast<int>(err);
    c.started = false;
    return 0;
}

static inline int val_array(Value &v, ArrCursor &c) {
    od::array a;
    auto err = v.get_array().get(a);
    if (err) return static_cast<int>(err);
    err = a.begin().get(c.it);
    if (err) return static_cast<int>(err);
    err = a.end().get(c.end);
    if (err) return static_cast<int>(err);
    c.started = false;
    return 0;
}

/* 1: a field was read into key/val; 0: end of object; -code: error. */
static inline int obj_next(ObjCursor &c, const char **key, size_t *klen, Value &val) {
    if (c.started) {
        ++c.it;
    } else {
        c.started = true;
    }
    if (!(c.it != c.end)) return 0;
    od::field f;
    auto err = (*c.it).get(f);
    if (err) return -static_cast<int>(err);
    std::string_view k = f.escaped_key();
    *key = k.data();
    *klen = k.size();
    val = std::move(f.value());
    return 1;
}

/* 1: an element was read into val; 0: end of array; -code: error. */
static inline int arr_next(ArrCursor &c, Value &val) {
    if (c.started) {
        ++c.it;
    } else {
        c.started = true;
    }
    if (!(c.it != c.end)) return 0;
    auto err = (*c.it).get(val);
    if (err) return -static_cast<int>(err);
    return 1;
}

/* The raw text of a scalar token (a string keeps its quotes). */
static inline int val_raw(Value &v, const char **p, size_t *n) {
    std::string_view s = v.raw_json_token();
    *p = s.data();
    *n = s.size();
    return 0;
}

/* A JSON string's content, unescaped into the parser's string buffer. */
static inline int val_str(Value &v, const char **p, size_t *n) {
    std::string_view s;
    auto err = v.get_string().get(s);
    if (err) return static_cast<int>(err);
    *p = s.data();
    *n = s.size();
    return 0;
}

static inline int val_int64(Value &v, int64_t *out) {
    return static_cast<int>(v.get_int64().get(*out));
}

static inline int val_bool(Value &v, bool *out) {
    return static_cast<int>(v.get_bool().get(*out));
}

static inline int val_is_null(Value &v) {
    bool n = false;
    auto err = v.is_null().get(n);
    if (err) return 0;
    return n ? 1 : 0;
}

}  // namespace xsj

#endif
