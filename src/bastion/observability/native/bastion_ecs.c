/*
 * _bastion_ecs: the event writer's formatting of access and security events as ECS JSON lines,
 * in C. The reference is bastion.observability.ecs (access_line, security_line), and the output
 * here is byte for byte the same: the tests (tests/observability/test_native_lines.py) hold the
 * two to it on escapes, non-ASCII text, credentials to redact and unusual values.
 *
 * Redaction stays where it is: every value a client controls goes through the Python Redactor's
 * methods, called from here whenever its own quick test (which this file repeats, to skip the
 * call) does not already prove the value clean. What this file does in C is the rest: reading
 * the record, the JSON escaping (as orjson's: the two-character escapes, \u00XX in lower-case
 * hex for the other control characters, everything else as UTF-8) and assembling the line.
 * A record or event with a value of a type the fast path does not know (a float among the
 * fields, a Mapping that is not a dict, an int beyond 64 bits) is handed to the Python function,
 * whole, so that nothing unusual is ever formatted differently.
 *
 * An Appender is the event writer's buffer: it formats each event or access record into a block
 * of lines as it comes, and hands the block over to the writer thread (see Appender).
 *
 * Licensed under the Apache License 2.0, like bastion.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <structmember.h>

#include <stdint.h>

#include <limits.h>
#include <math.h>
#include <string.h>
#include <time.h>

/* -- configuration, set once by bastion.observability.writer through configure() */

static PyObject *stored_type;       /* bastion.observability.ecs.StoredEvent */
static PyObject *access_fallback;   /* bastion.observability.ecs.access_line */
static PyObject *security_fallback; /* bastion.observability.ecs.security_line */
static Py_ssize_t shortest_secret = -1;

static PyObject *s_path, *s_request_id, *s_text, *s_secret_name, *s_custom_paths;
static PyObject *s_action, *s_outcome, *s_timestamp, *s_guard, *s_client_ip, *s_method;
static PyObject *s_status, *s_reason, *s_user_id, *s_fields;
static PyObject *s_alert_dataset, *s_security_dataset, *s_success, *s_failure;

#define FALLBACK 1 /* a formatter's answer: not for the fast path, use the Python function */

/* -- an output buffer */

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
    char small[1024];
} Buf;

static void
buf_init(Buf *b)
{
    b->data = b->small;
    b->len = 0;
    b->cap = (Py_ssize_t)sizeof(b->small);
}

static void
buf_free(Buf *b)
{
    if (b->data != b->small) {
        PyMem_Free(b->data);
    }
}

static int
buf_grow(Buf *b, Py_ssize_t need)
{
    char *data;
    Py_ssize_t cap = b->cap * 2;
    while (cap < need) {
        cap *= 2;
    }
    if (b->data == b->small) {
        data = PyMem_Malloc((size_t)cap);
        if (data != NULL) {
            memcpy(data, b->small, (size_t)b->len);
        }
    }
    else {
        data = PyMem_Realloc(b->data, (size_t)cap);
    }
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

#if defined(__GNUC__)
#define HOT_INLINE static inline __attribute__((always_inline))
#else
#define HOT_INLINE static inline
#endif

HOT_INLINE int
buf_reserve(Buf *b, Py_ssize_t more)
{
    return b->len + more <= b->cap ? 0 : buf_grow(b, b->len + more);
}

/* inlined everywhere: a literal's copy (PUT) is then a few moves of a known size, not a call */
HOT_INLINE int
put(Buf *b, const char *s, Py_ssize_t n)
{
    if (buf_reserve(b, n) < 0) {
        return -1;
    }
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

#define PUT(b, literal) put((b), (literal), (Py_ssize_t)(sizeof(literal) - 1))

static const char two_digits[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* an integer in decimal, two digits per step */
static int
put_ll_any(Buf *b, long long value)
{
    char digits[24];
    char *end = digits + sizeof(digits), *p = end;
    unsigned long long magnitude = value < 0 ? 0ULL - (unsigned long long)value
                                             : (unsigned long long)value;
    while (magnitude >= 100) {
        unsigned int pair = (unsigned int)(magnitude % 100);
        magnitude /= 100;
        p -= 2;
        memcpy(p, two_digits + 2 * pair, 2);
    }
    if (magnitude >= 10) {
        p -= 2;
        memcpy(p, two_digits + 2 * magnitude, 2);
    }
    else {
        *--p = (char)('0' + magnitude);
    }
    if (value < 0) {
        *--p = '-';
    }
    return put(b, p, end - p);
}

/* put_ll_any, inlined for what most numbers of a line are (a status, a size, a duration in
 * milliseconds): 0 to 999 */
HOT_INLINE int
put_ll(Buf *b, long long value)
{
    char digits[3];
    if ((unsigned long long)value >= 1000) {
        return put_ll_any(b, value);
    }
    if (value < 10) {
        digits[0] = (char)('0' + value);
        return put(b, digits, 1);
    }
    if (value < 100) {
        return put(b, two_digits + 2 * value, 2);
    }
    digits[0] = (char)('0' + value / 100);
    memcpy(digits + 1, two_digits + 2 * (value % 100), 2);
    return put(b, digits, 3);
}

/* which bytes a JSON string escapes: 0 none, else the letter of the two-character escape, or
 * 'u' for \u00XX */
static char escapes[256];

static void
init_escapes(void)
{
    for (int c = 0; c < 0x20; c++) {
        escapes[c] = 'u';
    }
    escapes['\b'] = 'b';
    escapes['\t'] = 't';
    escapes['\n'] = 'n';
    escapes['\f'] = 'f';
    escapes['\r'] = 'r';
    escapes['"'] = '"';
    escapes['\\'] = '\\';
}

/* Eight bytes at a time: whether any is a control character, a quote or a backslash (the
 * bytes a JSON string escapes). The classic SWAR tests (a byte below 0x20; a byte equal to one
 * value), exact for every byte value, bytes of 0x80 and up (UTF-8) included. */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

HOT_INLINE uint64_t
word_needs_escape(uint64_t w)
{
    uint64_t quote = w ^ (ONES * '"'), backslash = w ^ (ONES * '\\');
    return (((w - ONES * 0x20) & ~w) | ((quote - ONES) & ~quote) |
            ((backslash - ONES) & ~backslash)) & HIGHS;
}

/* the bytes after the last whole word of ``s`` (``n`` long, ``i`` of them tested) as a word:
 * the string's last eight bytes when it has eight (some tested twice), else its 1 to 7 bytes
 * padded with a byte no test flags ('a') */
HOT_INLINE uint64_t
tail_word(const char *s, Py_ssize_t n, Py_ssize_t i)
{
    uint64_t w = ONES * 'a';
    if (n >= 8) {
        memcpy(&w, s + n - 8, 8);
        return w;
    }
    for (Py_ssize_t k = 0; i + k < n; k++) {
        w = (w & ~(0xffULL << (8 * k))) | ((uint64_t)(unsigned char)s[i + k] << (8 * k));
    }
    return w;
}

/* where the first word of ``s`` that ``flags`` flags starts, ``n`` when none does: a whole
 * string test eight bytes at a time (the byte loops go on from the index answered) */
HOT_INLINE Py_ssize_t
first_flagged(const char *s, Py_ssize_t n, uint64_t (*flags)(uint64_t))
{
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (flags(w)) {
            return i;
        }
    }
    return i == n || !flags(tail_word(s, n, i)) ? n : i;
}

/* ``s`` as the body of a JSON string, escaped as orjson escapes it */
static int
put_escaped(Buf *b, const char *s, Py_ssize_t n)
{
    static const char hex[] = "0123456789abcdef";
    Py_ssize_t start = 0, i = first_flagged(s, n, word_needs_escape);
    if (i == n) {
        return put(b, s, n);
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char escape[6];
        Py_ssize_t size = 2;
        if (!escapes[c]) {
            continue;
        }
        escape[0] = '\\';
        escape[1] = escapes[c];
        if (escape[1] == 'u') {
            memcpy(escape + 2, "00", 2);
            escape[4] = hex[c >> 4];
            escape[5] = hex[c & 15];
            size = 6;
        }
        if (put(b, s + start, i - start) < 0 || put(b, escape, size) < 0) {
            return -1;
        }
        start = i + 1;
    }
    return put(b, s + start, n - start);
}

/* a str as a JSON string (quoted); a str that is not valid UTF-8 (a lone surrogate) raises
 * UnicodeEncodeError, a ValueError as orjson's refusal is a TypeError: the writer drops either.
 * Called directly for the strs that differ from request to request (a path, a request id, a
 * host): the cache of put_json_str below would only lose the strings that do repeat to them. */
static int
put_json_text(Buf *b, PyObject *str)
{
    Py_ssize_t n;
    const char *s;
    if (!PyUnicode_Check(str)) {
        PyErr_SetString(PyExc_TypeError, "the redactor answered something else than a str");
        return -1;
    }
    if (PyUnicode_IS_COMPACT_ASCII(str)) { /* its UTF-8 is its data */
        s = (const char *)PyUnicode_1BYTE_DATA(str);
        n = PyUnicode_GET_LENGTH(str);
    }
    else if ((s = PyUnicode_AsUTF8AndSize(str, &n)) == NULL) {
        return -1;
    }
    if (PUT(b, "\"") < 0 || put_escaped(b, s, n) < 0) {
        return -1;
    }
    return PUT(b, "\"");
}

/* The JSON form of the short strings that repeat from event to event (actions, outcomes,
 * guards, methods, field names, consumers, key ids, addresses), by identity: a slot holds a
 * reference to its str, so the str cannot be freed and its address reused while cached, and a
 * str never changes. Direct-mapped: a miss replaces the slot. */
#define QUOTED_SLOTS 512
#define QUOTED_MAX 62
typedef struct {
    PyObject *str;
    unsigned char len;
    char json[QUOTED_MAX + 1];
} Quoted;
static Quoted quoted[QUOTED_SLOTS];

static int
put_json_str(Buf *b, PyObject *str)
{
    Quoted *slot = &quoted[((uintptr_t)str >> 4) % QUOTED_SLOTS];
    Py_ssize_t start = b->len, n;
    if (slot->str == str) {
        return put(b, slot->json, slot->len);
    }
    if (put_json_text(b, str) < 0) {
        return -1;
    }
    n = b->len - start;
    if (n <= QUOTED_MAX && PyUnicode_CheckExact(str)) {
        Py_XSETREF(slot->str, Py_NewRef(str));
        memcpy(slot->json, b->data + start, (size_t)n);
        slot->len = (unsigned char)n;
    }
    return 0;
}

/* a str as it is (values the engine or the config validated: ips, route names); an ASCII one
 * (every address) is its own UTF-8 */
HOT_INLINE int
put_raw_str(Buf *b, PyObject *str)
{
    Py_ssize_t n;
    const char *s;
    if (PyUnicode_IS_COMPACT_ASCII(str)) {
        return put(b, (const char *)PyUnicode_1BYTE_DATA(str), PyUnicode_GET_LENGTH(str));
    }
    s = PyUnicode_AsUTF8AndSize(str, &n);
    return s == NULL ? -1 : put(b, s, n);
}

/* -- timestamps: RFC 3339 UTC with milliseconds, the seconds part formatted once per second */

static long long stamp_second = LLONG_MIN;
static char stamp_text[64];
static Py_ssize_t stamp_len;
#define LAST_STAMP 253402300800.0 /* year 10000: beyond it, the Python function answers */

/* a timestamp (float, or int) the fast path can format; 0 if so */
static int
stamp_value(PyObject *obj, double *value)
{
    if (PyFloat_CheckExact(obj)) {
        *value = PyFloat_AS_DOUBLE(obj);
    }
    else if (PyLong_CheckExact(obj)) {
        *value = PyLong_AsDouble(obj);
        if (*value == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return FALLBACK;
        }
    }
    else {
        return FALLBACK;
    }
    return (*value >= 0.0 && *value < LAST_STAMP) ? 0 : FALLBACK;
}

static int
put_stamp(Buf *b, double ts)
{
    long long second = (long long)ts;
    int millis;
    char tail[8];
    if (second != stamp_second) {
        time_t t = (time_t)second;
        struct tm tm;
        size_t n;
        if (gmtime_r(&t, &tm) == NULL) {
            PyErr_SetString(PyExc_ValueError, "timestamp out of range");
            return -1;
        }
        n = strftime(stamp_text, sizeof(stamp_text), "%Y-%m-%dT%H:%M:%S", &tm);
        if (n == 0) {
            PyErr_SetString(PyExc_ValueError, "timestamp out of range");
            return -1;
        }
        stamp_len = (Py_ssize_t)n;
        stamp_second = second;
    }
    millis = (int)((ts - (double)second) * 1000.0);
    if (millis < 0 || millis > 999) {
        PyErr_SetString(PyExc_ValueError, "timestamp out of range");
        return -1;
    }
    tail[0] = '.';
    tail[1] = (char)('0' + millis / 100);
    tail[2] = (char)('0' + millis / 10 % 10);
    tail[3] = (char)('0' + millis % 10);
    tail[4] = 'Z';
    if (put(b, stamp_text, stamp_len) < 0) {
        return -1;
    }
    return put(b, tail, 5);
}

/* int(seconds * 1e9) for a float (or int) duration; FALLBACK when Python would not get a
 * 64-bit int (inf, nan, absurd) */
static int
nanoseconds(PyObject *obj, long long *value)
{
    double seconds, ns;
    if (PyFloat_CheckExact(obj)) {
        seconds = PyFloat_AS_DOUBLE(obj);
    }
    else if (PyLong_CheckExact(obj)) {
        seconds = PyLong_AsDouble(obj);
        if (seconds == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return FALLBACK;
        }
    }
    else {
        return FALLBACK;
    }
    ns = seconds * 1e9;
    if (!isfinite(ns) || ns >= 9.0e18 || ns <= -9.0e18) {
        return FALLBACK;
    }
    *value = (long long)ns;
    return 0;
}

static int
long_value(PyObject *obj, long long *value)
{
    int overflow;
    if (!PyLong_CheckExact(obj)) {
        return FALLBACK;
    }
    *value = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow) {
        return FALLBACK;
    }
    if (*value == -1 && PyErr_Occurred()) {
        return -1;
    }
    return 0;
}

static double
float_value(PyObject *obj)
{
    return PyFloat_CheckExact(obj) ? PyFloat_AS_DOUBLE(obj) : PyLong_AsDouble(obj);
}

/* -- the redactor's quick tests, repeated so that clean values skip the call */

/* Eight ASCII bytes at a time: the high bit of each byte that is not a letter or a digit.
 * For a byte x below 0x80, ((x | 0x80) - c) keeps its high bit exactly when x >= c, with no
 * borrow from the next byte. */
#define AT_LEAST(w, c) ((((w) | HIGHS) - ONES * (c)) & HIGHS)
HOT_INLINE uint64_t
word_not_alnum(uint64_t w)
{
    uint64_t digit = AT_LEAST(w, '0') & ~AT_LEAST(w, '9' + 1);
    uint64_t upper = AT_LEAST(w, 'A') & ~AT_LEAST(w, 'Z' + 1);
    uint64_t lower = AT_LEAST(w, 'a') & ~AT_LEAST(w, 'z' + 1);
    return (w & HIGHS) | (~(digit | upper | lower) & HIGHS);
}

static int
ascii_alnum(PyObject *str)
{
    const char *s;
    Py_ssize_t n;
    if (!PyUnicode_IS_ASCII(str)) {
        return 0;
    }
    s = (const char *)PyUnicode_1BYTE_DATA(str);
    n = PyUnicode_GET_LENGTH(str);
    return n > 0 && first_flagged(s, n, word_not_alnum) == n;
}

/* The Redactor's answers for the names and texts that repeat (field names, consumers), by the
 * identity of the redactor and of the str asked about (both referenced while cached, so neither
 * address can be reused): its answer depends on nothing else (its rules are fixed when it is
 * built). Direct-mapped, like the quoted strings. */
#define MEMO_SLOTS 256
#define MEMO_MAX 256
typedef struct {
    PyObject *redactor;
    PyObject *method;
    PyObject *arg;
    PyObject *answer;
} Memo;
static Memo memo[MEMO_SLOTS];

static PyObject *
ask_redactor(PyObject *redactor, PyObject *method, PyObject *arg)
{
    uintptr_t key = ((uintptr_t)arg >> 4) ^ ((uintptr_t)redactor >> 6) ^ ((uintptr_t)method >> 4);
    Memo *slot = &memo[key % MEMO_SLOTS];
    PyObject *answer;
    if (slot->arg == arg && slot->redactor == redactor && slot->method == method) {
        return Py_NewRef(slot->answer);
    }
    answer = PyObject_CallMethodOneArg(redactor, method, arg);
    if (answer != NULL && PyUnicode_CheckExact(arg) && PyUnicode_GET_LENGTH(arg) <= MEMO_MAX) {
        Py_XSETREF(slot->answer, Py_NewRef(answer));
        Py_XSETREF(slot->arg, Py_NewRef(arg));
        Py_XSETREF(slot->redactor, Py_NewRef(redactor));
        slot->method = method; /* an interned name this module holds */
    }
    return answer;
}

/* Redactor.text(value): a new reference */
static PyObject *
redact_text(PyObject *redactor, PyObject *value)
{
    if (PyUnicode_GET_LENGTH(value) < 8 || ascii_alnum(value)) {
        return Py_NewRef(value);
    }
    return ask_redactor(redactor, s_text, value);
}

/* Redactor.request_id(value): a new reference */
static PyObject *
redact_request_id(PyObject *redactor, PyObject *value)
{
    if (PyUnicode_GET_LENGTH(value) < shortest_secret || ascii_alnum(value)) {
        return Py_NewRef(value);
    }
    return PyObject_CallMethodOneArg(redactor, s_request_id, value);
}

static int
custom_paths(PyObject *redactor)
{
    PyObject *flag = PyObject_GetAttr(redactor, s_custom_paths);
    int truth;
    if (flag == NULL) {
        return -1;
    }
    truth = PyObject_IsTrue(flag);
    Py_DECREF(flag);
    return truth;
}

/* bastion.observability.ecs._plain: ASCII, and none of the characters a JSON string escapes
 * (control characters included) or a credential pattern needs (quote, backslash, '_', '.', ' ',
 * '='). Eight bytes at a time, with the SWAR tests of word_needs_escape. */
#define BYTE_IS(w, c) ((((w) ^ (ONES * (c))) - ONES) & ~((w) ^ (ONES * (c))))
HOT_INLINE uint64_t
word_unplain(uint64_t w)
{
    return (w | ((w - ONES * 0x20) & ~w) | BYTE_IS(w, '"') | BYTE_IS(w, '\\') | BYTE_IS(w, '_') |
            BYTE_IS(w, '.') | BYTE_IS(w, ' ') | BYTE_IS(w, '=')) & HIGHS;
}

static int
plain(const char *s, Py_ssize_t n)
{
    return first_flagged(s, n, word_unplain) == n;
}

/* bytes from the wire (latin-1) through a Redactor method, then as a JSON string */
static int
put_redacted_bytes(Buf *b, PyObject *redactor, PyObject *method, const char *s, Py_ssize_t n)
{
    PyObject *text = PyUnicode_DecodeLatin1(s, n, NULL);
    PyObject *done;
    int rc;
    if (text == NULL) {
        return -1;
    }
    done = PyObject_CallMethodOneArg(redactor, method, text);
    Py_DECREF(text);
    if (done == NULL) {
        return -1;
    }
    rc = put_json_str(b, done);
    Py_DECREF(done);
    return rc;
}

/* -- access lines: bastion.observability.ecs.access_line */

static int
format_access(Buf *b, PyObject *record, PyObject *redactor, int custom)
{
    PyObject **v;
    double ts;
    long long status, body_in, bytes_out, duration, upstream = -1;
    int has_upstream, rc;
    const char *path, *rid;
    Py_ssize_t path_len, rid_len;
    PyObject *user = NULL;

    if (!PyTuple_CheckExact(record) || PyTuple_GET_SIZE(record) != 14) {
        return FALLBACK;
    }
    v = &PyTuple_GET_ITEM(record, 0);
    if (!PyBytes_CheckExact(v[1]) || !PyBytes_CheckExact(v[2]) || !PyUnicode_CheckExact(v[7]) ||
        !PyBytes_CheckExact(v[8]) || !PyUnicode_CheckExact(v[9]) ||
        !(v[10] == Py_None || PyUnicode_CheckExact(v[10])) || !PyUnicode_CheckExact(v[11]) ||
        !PyUnicode_CheckExact(v[13]) || !(PyFloat_CheckExact(v[12]) || PyLong_CheckExact(v[12]))) {
        return FALLBACK;
    }
    if ((rc = stamp_value(v[0], &ts)) != 0 || (rc = long_value(v[3], &status)) != 0 ||
        (rc = long_value(v[4], &body_in)) != 0 || (rc = long_value(v[5], &bytes_out)) != 0 ||
        (rc = nanoseconds(v[6], &duration)) != 0) {
        return rc;
    }
    has_upstream = float_value(v[12]) >= 0.0;
    if (has_upstream && (rc = nanoseconds(v[12], &upstream)) != 0) {
        return rc;
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    if (custom < 0 && (custom = custom_paths(redactor)) < 0) {
        return -1;
    }

    if (PUT(b, "{\"@timestamp\":\"") < 0 || put_stamp(b, ts) < 0 ||
        PUT(b, "\",\"event\":{\"kind\":\"event\",\"dataset\":\"bastion.access\","
               "\"category\":[\"web\"],\"type\":[\"access\"],\"action\":\"http.request\","
               "\"outcome\":\"") < 0 ||
        (status >= 400 ? PUT(b, "failure") : PUT(b, "success")) < 0 ||
        PUT(b, "\",\"duration\":") < 0 || put_ll(b, duration) < 0 ||
        PUT(b, "},\"source\":{\"ip\":\"") < 0 || put_raw_str(b, v[7]) < 0 ||
        PUT(b, "\"},\"client\":{\"ip\":\"") < 0 || put_raw_str(b, v[7]) < 0 ||
        PUT(b, "\"},\"url\":{\"path\":") < 0) {
        return -1;
    }
    path = PyBytes_AS_STRING(v[2]);
    path_len = PyBytes_GET_SIZE(v[2]);
    if (path_len < shortest_secret && !custom && plain(path, path_len)) {
        rc = PUT(b, "\"") < 0 || put(b, path, path_len) < 0 || PUT(b, "\"") < 0 ? -1 : 0;
    }
    else {
        rc = put_redacted_bytes(b, redactor, s_path, path, path_len);
    }
    if (rc < 0) {
        return -1;
    }
    if (PyUnicode_GET_LENGTH(v[11]) > 0) {
        /* a client picks its Host (any reg-name: "_", "." and "=" included): scrubbed like
         * text. The engine keeps one host str per connection, so the redactor's answer is
         * remembered (ask_redactor) for every later request on it. */
        PyObject *domain = redact_text(redactor, v[11]);
        if (domain == NULL) {
            return -1;
        }
        rc = PUT(b, ",\"domain\":") < 0 || put_json_text(b, domain) < 0 ? -1 : 0;
        Py_DECREF(domain);
        if (rc < 0) {
            return -1;
        }
    }
    if (PUT(b, "},\"http\":{\"request\":{\"method\":\"") < 0 ||
        put(b, PyBytes_AS_STRING(v[1]), PyBytes_GET_SIZE(v[1])) < 0 ||
        PUT(b, "\",\"id\":") < 0) {
        return -1;
    }
    {
        /* rid[rid.find(b": ") + 2 : -2], with Python's slice bounds */
        const char *field = PyBytes_AS_STRING(v[8]);
        Py_ssize_t n = PyBytes_GET_SIZE(v[8]), found = -1, start, stop;
        for (Py_ssize_t i = 0; i + 1 < n; i++) {
            if (field[i] == ':' && field[i + 1] == ' ') {
                found = i;
                break;
            }
        }
        start = found + 2;
        if (start > n) {
            start = n;
        }
        stop = n >= 2 ? n - 2 : 0;
        rid = field + start;
        rid_len = stop > start ? stop - start : 0;
    }
    if (plain(rid, rid_len)) {
        rc = PUT(b, "\"") < 0 || put(b, rid, rid_len) < 0 || PUT(b, "\"") < 0 ? -1 : 0;
    }
    else {
        rc = put_redacted_bytes(b, redactor, s_request_id, rid, rid_len);
    }
    if (rc < 0 || PUT(b, ",\"body\":{\"bytes\":") < 0 || put_ll(b, body_in) < 0 ||
        PUT(b, "}},\"response\":{\"status_code\":") < 0 || put_ll(b, status) < 0 ||
        PUT(b, ",\"bytes\":") < 0 || put_ll(b, bytes_out) < 0 || PUT(b, "}}") < 0) {
        return -1;
    }
    if (v[10] != Py_None) {
        user = redact_text(redactor, v[10]);
        if (user == NULL) {
            return -1;
        }
        rc = PUT(b, ",\"user\":{\"id\":") < 0 || put_json_str(b, user) < 0 || PUT(b, "}") < 0;
        Py_DECREF(user);
        if (rc) {
            return -1;
        }
    }
    if (PUT(b, ",\"bastion\":{\"route\":\"") < 0 || put_raw_str(b, v[9]) < 0 || PUT(b, "\"") < 0) {
        return -1;
    }
    if (has_upstream) {
        if (PUT(b, ",\"upstream\":{\"duration\":") < 0 || put_ll(b, upstream) < 0 ||
            PUT(b, "}") < 0) {
            return -1;
        }
    }
    rc = v[13] == v[7] ? 0 : PyUnicode_Compare(v[13], v[7]);
    if (rc == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (rc != 0) {
        if (PUT(b, ",\"peer\":{\"ip\":\"") < 0 || put_raw_str(b, v[13]) < 0 ||
            PUT(b, "\"}") < 0) {
            return -1;
        }
    }
    return PUT(b, "}}\n");
}

static PyObject *
finish(Buf *b)
{
    PyObject *line = PyBytes_FromStringAndSize(b->data, b->len);
    buf_free(b);
    return line;
}

/* the Python function's bytes (a new reference, stolen) appended to ``b`` */
static int
put_answer(Buf *b, PyObject *line)
{
    int rc;
    if (line == NULL) {
        return -1;
    }
    if (!PyBytes_Check(line)) {
        Py_DECREF(line);
        PyErr_SetString(PyExc_TypeError, "the Python formatter answered something else than bytes");
        return -1;
    }
    rc = put(b, PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line));
    Py_DECREF(line);
    return rc;
}

/* the access line of ``record`` appended to ``b``: 0, or -1 with an exception and nothing
 * appended */
static int
access_into(Buf *b, PyObject *record, PyObject *redactor, PyObject *stamps, int custom)
{
    Py_ssize_t mark = b->len;
    int rc = format_access(b, record, redactor, custom);
    if (rc == 0) {
        return 0;
    }
    b->len = mark;
    if (rc < 0) {
        return -1;
    }
    rc = put_answer(
        b, PyObject_CallFunctionObjArgs(access_fallback, record, redactor, stamps, NULL));
    if (rc < 0) {
        b->len = mark;
    }
    return rc;
}

static PyObject *
access_line_impl(PyObject *record, PyObject *redactor, PyObject *stamps, int custom)
{
    Buf b;
    buf_init(&b);
    if (access_into(&b, record, redactor, stamps, custom) < 0) {
        buf_free(&b);
        return NULL;
    }
    return finish(&b);
}

/* -- security lines: bastion.observability.ecs.security_line */

typedef struct {
    PyObject *action, *outcome, *timestamp, *guard, *request_id, *client_ip, *method, *path;
    PyObject *status, *reason, *user_id, *fields;
} Event;

static void
event_clear(Event *e)
{
    Py_CLEAR(e->action);
    Py_CLEAR(e->outcome);
    Py_CLEAR(e->timestamp);
    Py_CLEAR(e->guard);
    Py_CLEAR(e->request_id);
    Py_CLEAR(e->client_ip);
    Py_CLEAR(e->method);
    Py_CLEAR(e->path);
    Py_CLEAR(e->status);
    Py_CLEAR(e->reason);
    Py_CLEAR(e->user_id);
    Py_CLEAR(e->fields);
}

/* Reading an event's attributes through the descriptors of its class, looked up once per class
 * (while its version tag, which any change to the class resets, stays the same): the getter of
 * a mypyc attribute, the slot of a Python __slots__ attribute; anything else generically. */
#define EVENT_FIELDS 12
typedef struct {
    getter get;       /* a getset descriptor's */
    void *closure;
    Py_ssize_t offset; /* a T_OBJECT_EX member's slot, or -1 */
} Reader;
static PyTypeObject *reader_type;
static unsigned int reader_version;
static Reader readers[EVENT_FIELDS];

static PyObject *event_names[EVENT_FIELDS]; /* as the Event struct orders them */

static void
readers_for(PyTypeObject *type)
{
    PyObject **names = event_names;
    Py_CLEAR(reader_type);
    if (!PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG) || type->tp_version_tag == 0) {
        return;
    }
    for (int i = 0; i < EVENT_FIELDS; i++) {
        PyObject *descr = _PyType_Lookup(type, names[i]); /* borrowed */
        readers[i].get = NULL;
        readers[i].offset = -1;
        if (descr != NULL && Py_IS_TYPE(descr, &PyGetSetDescr_Type)) {
            PyGetSetDef *def = ((PyGetSetDescrObject *)descr)->d_getset;
            readers[i].get = def->get;
            readers[i].closure = def->closure;
        }
        else if (descr != NULL && Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
            PyMemberDef *def = ((PyMemberDescrObject *)descr)->d_member;
            if (def->type == T_OBJECT_EX) {
                readers[i].offset = def->offset;
            }
        }
    }
    reader_type = (PyTypeObject *)Py_NewRef(type);
    reader_version = type->tp_version_tag;
}

static PyObject *
read_field(PyObject *event, int i, PyObject *name)
{
    Reader *reader = &readers[i];
    if (reader->get != NULL) {
        return reader->get(event, reader->closure);
    }
    if (reader->offset >= 0) {
        PyObject *value = *(PyObject **)((char *)event + reader->offset);
        if (value != NULL) {
            return Py_NewRef(value);
        }
    }
    return PyObject_GetAttr(event, name);
}

static int
event_read(Event *e, PyObject *event)
{
    PyObject **slots[EVENT_FIELDS] = {
        &e->action, &e->outcome, &e->timestamp, &e->guard, &e->request_id, &e->client_ip,
        &e->method, &e->path, &e->status, &e->reason, &e->user_id, &e->fields,
    };
    PyObject **names = event_names;
    PyTypeObject *type = Py_TYPE(event);
    int cached;
    memset(e, 0, sizeof(*e));
    if (type != reader_type || type->tp_version_tag != reader_version) {
        readers_for(type);
    }
    cached = reader_type == type;
    for (int i = 0; i < EVENT_FIELDS; i++) {
        *slots[i] = cached ? read_field(event, i, names[i]) : PyObject_GetAttr(event, names[i]);
        if (*slots[i] == NULL) {
            return -1;
        }
    }
    if (!PyUnicode_CheckExact(e->action) || !PyUnicode_CheckExact(e->outcome) ||
        !PyUnicode_CheckExact(e->guard) || !PyUnicode_CheckExact(e->request_id) ||
        !PyUnicode_CheckExact(e->client_ip) || !PyUnicode_CheckExact(e->method) ||
        !PyUnicode_CheckExact(e->path) || !PyUnicode_CheckExact(e->reason) ||
        !(e->user_id == Py_None || PyUnicode_CheckExact(e->user_id)) ||
        !(e->status == Py_None || PyLong_CheckExact(e->status))) {
        return FALLBACK;
    }
    return 0;
}

static int
starts_with(PyObject *str, const char *prefix, Py_ssize_t n)
{
    return PyUnicode_IS_ASCII(str) && PyUnicode_GET_LENGTH(str) >= n &&
           memcmp(PyUnicode_1BYTE_DATA(str), prefix, (size_t)n) == 0;
}

/* the fields of an event, redacted (Redactor.fields) and as orjson writes them; FALLBACK for a
 * value other than str, bool, None or a 64-bit int */
static int
put_fields(Buf *b, PyObject *redactor, PyObject *fields)
{
    Py_ssize_t pos = 0;
    PyObject *name, *value;
    int first = 1;
    if (PUT(b, "{") < 0) {
        return -1;
    }
    while (PyDict_Next(fields, &pos, &name, &value)) {
        PyObject *secret;
        int is_secret, rc;
        if (!PyUnicode_CheckExact(name)) {
            return FALLBACK;
        }
        if (!(PyUnicode_CheckExact(value) || value == Py_None || PyBool_Check(value) ||
              PyLong_CheckExact(value))) {
            return FALLBACK;
        }
        Py_INCREF(name);
        Py_INCREF(value);
        secret = ask_redactor(redactor, s_secret_name, name);
        is_secret = secret == NULL ? -1 : PyObject_IsTrue(secret);
        Py_XDECREF(secret);
        rc = is_secret < 0 ? -1 : 0;
        if (rc == 0 && (first ? 0 : PUT(b, ",")) < 0) {
            rc = -1;
        }
        if (rc == 0 && (put_json_str(b, name) < 0 || PUT(b, ":") < 0)) {
            rc = -1;
        }
        if (rc == 0) {
            if (is_secret) {
                rc = PUT(b, "\"[REDACTED]\"");
            }
            else if (PyUnicode_CheckExact(value)) {
                PyObject *clean = redact_text(redactor, value);
                rc = clean == NULL ? -1 : put_json_str(b, clean);
                Py_XDECREF(clean);
            }
            else if (value == Py_None) {
                rc = PUT(b, "null");
            }
            else if (PyBool_Check(value)) {
                rc = value == Py_True ? PUT(b, "true") : PUT(b, "false");
            }
            else {
                long long number;
                rc = long_value(value, &number);
                if (rc == 0) {
                    rc = put_ll(b, number);
                }
            }
        }
        Py_DECREF(name);
        Py_DECREF(value);
        if (rc != 0) {
            return rc;
        }
        first = 0;
    }
    return PUT(b, "}");
}

/* The JSON of the fields dicts that repeat, by content: a guard hands the same fields for every
 * request of one key and route (the API-key and bearer guards keep their Allow decisions), and
 * writing them costs more than the rest of the line. A slot holds references to the redactor and
 * to every name and value it was built from, compared by identity in order (names are str,
 * values str, int, bool or None: none can change, and none can be freed and its address reused
 * while held), so a slot answers only for the very same content, redacted by the very same
 * redactor; any other dict at that address is a miss. Direct-mapped by the dict's address. */
#define FIELDS_SLOTS 64
#define FIELDS_ITEMS 8
#define FIELDS_JSON 480
typedef struct {
    PyObject *redactor;
    Py_ssize_t n;
    PyObject *items[2 * FIELDS_ITEMS]; /* name, value, name, value... in the dict's order */
    Py_ssize_t len;
    char json[FIELDS_JSON];
} FieldsMemo;
static FieldsMemo fields_memo[FIELDS_SLOTS];

static int
put_fields_remembered(Buf *b, PyObject *redactor, PyObject *fields)
{
    Py_ssize_t n = PyDict_GET_SIZE(fields), start = b->len, pos = 0, i = 0;
    FieldsMemo *slot =
        &fields_memo[(((uintptr_t)fields >> 4) ^ ((uintptr_t)redactor >> 6)) % FIELDS_SLOTS];
    PyObject *name, *value, *old[2 * FIELDS_ITEMS + 1];
    Py_ssize_t old_count = 0;
    int rc;
    if (n <= FIELDS_ITEMS && slot->redactor == redactor && slot->n == n) {
        int same = 1;
        while (PyDict_Next(fields, &pos, &name, &value)) {
            if (slot->items[i] != name || slot->items[i + 1] != value) {
                same = 0;
                break;
            }
            i += 2;
        }
        if (same) {
            return put(b, slot->json, slot->len);
        }
    }
    if ((rc = put_fields(b, redactor, fields)) != 0 || n > FIELDS_ITEMS ||
        b->len - start > FIELDS_JSON) {
        return rc;
    }
    /* remember it: the old references are let go once the slot is whole again */
    if (slot->redactor != NULL) {
        old[old_count++] = slot->redactor;
        for (i = 0; i < 2 * slot->n; i++) {
            old[old_count++] = slot->items[i];
        }
    }
    slot->redactor = Py_NewRef(redactor);
    pos = 0;
    i = 0;
    while (PyDict_Next(fields, &pos, &name, &value)) {
        slot->items[i++] = Py_NewRef(name);
        slot->items[i++] = Py_NewRef(value);
    }
    slot->n = n;
    slot->len = b->len - start;
    memcpy(slot->json, b->data + start, (size_t)slot->len);
    for (i = 0; i < old_count; i++) {
        Py_DECREF(old[i]);
    }
    return 0;
}

/* The part of a security line from its timestamp's closing quote to its path, which its action
 * and outcome alone decide: remembered by their identity (references held, as for the quoted
 * strings), so the line of an event that repeats (``auth.success``) copies it whole. */
#define HEAD_SLOTS 32
#define HEAD_MAX 240
typedef struct {
    PyObject *action;
    PyObject *outcome;
    Py_ssize_t len;
    char text[HEAD_MAX];
} Head;
static Head heads[HEAD_SLOTS];

static int
put_security_head(Buf *b, PyObject *action, PyObject *outcome, int alert)
{
    Head *slot = &heads[(((uintptr_t)action >> 4) ^ ((uintptr_t)outcome >> 5)) % HEAD_SLOTS];
    Py_ssize_t start = b->len, n;
    int rc;
    if (slot->action == action && slot->outcome == outcome) {
        return put(b, slot->text, slot->len);
    }
    if ((alert ? PUT(b, "\",\"event\":{\"kind\":\"alert\",\"dataset\":\"bastion.alert\",")
               : PUT(b, "\",\"event\":{\"kind\":\"event\",\"dataset\":\"bastion.security\",")) < 0 ||
        (starts_with(action, "auth.", 5) ? PUT(b, "\"category\":[\"authentication\",\"web\"],")
                                          : PUT(b, "\"category\":[\"web\"],")) < 0) {
        return -1;
    }
    if (outcome == s_success || PyUnicode_CompareWithASCIIString(outcome, "success") == 0) {
        rc = PUT(b, "\"type\":[\"allowed\"],\"action\":");
    }
    else if (outcome == s_failure || PyUnicode_CompareWithASCIIString(outcome, "failure") == 0) {
        rc = PUT(b, "\"type\":[\"denied\"],\"action\":");
    }
    else {
        rc = PUT(b, "\"type\":[\"info\"],\"action\":");
    }
    if (rc < 0 || put_json_str(b, action) < 0 || PUT(b, ",\"outcome\":") < 0 ||
        put_json_str(b, outcome) < 0 || PUT(b, "},\"url\":{\"path\":") < 0) {
        return -1;
    }
    n = b->len - start;
    if (n <= HEAD_MAX && PyUnicode_CheckExact(action) && PyUnicode_CheckExact(outcome)) {
        Py_XSETREF(slot->action, Py_NewRef(action));
        Py_XSETREF(slot->outcome, Py_NewRef(outcome));
        memcpy(slot->text, b->data + start, (size_t)n);
        slot->len = n;
    }
    return 0;
}

/* the line of ``e`` into ``b``; the redacted user and request id (new references) out */
static int
format_security(Buf *b, Event *e, PyObject *redactor, int custom, PyObject **user,
                PyObject **request_id, int *alert)
{
    double ts;
    int rc, has_fields;
    long long status = 0;
    PyObject *path;

    if ((rc = stamp_value(e->timestamp, &ts)) != 0) {
        return rc;
    }
    if (e->status != Py_None && (rc = long_value(e->status, &status)) != 0) {
        return rc;
    }
    has_fields = PyObject_IsTrue(e->fields);
    if (has_fields < 0) {
        return -1;
    }
    if (has_fields && !PyDict_CheckExact(e->fields)) {
        return FALLBACK;
    }
    if (custom < 0 && (custom = custom_paths(redactor)) < 0) {
        return -1;
    }
    *alert = starts_with(e->action, "alert.", 6);
    if (PUT(b, "{\"@timestamp\":\"") < 0 || put_stamp(b, ts) < 0 ||
        put_security_head(b, e->action, e->outcome, *alert) < 0) {
        return -1;
    }
    if (PyUnicode_GET_LENGTH(e->path) >= shortest_secret || custom) {
        path = PyObject_CallMethodOneArg(redactor, s_path, e->path);
        if (path == NULL) {
            return -1;
        }
    }
    else {
        path = Py_NewRef(e->path);
    }
    rc = put_json_text(b, path);
    Py_DECREF(path);
    if (rc < 0 || PUT(b, "},\"http\":{\"request\":{\"method\":") < 0 ||
        put_json_str(b, e->method) < 0 || PUT(b, ",\"id\":") < 0) {
        return -1;
    }
    *request_id = redact_request_id(redactor, e->request_id);
    if (*request_id == NULL || put_json_text(b, *request_id) < 0 || PUT(b, "}") < 0) {
        return -1;
    }
    if (e->status != Py_None) {
        if (PUT(b, ",\"response\":{\"status_code\":") < 0 || put_ll(b, status) < 0 ||
            PUT(b, "}") < 0) {
            return -1;
        }
    }
    if (PUT(b, "},\"bastion\":{\"guard\":") < 0 || put_json_str(b, e->guard) < 0) {
        return -1;
    }
    if (PyUnicode_GET_LENGTH(e->reason) > 0) {
        PyObject *reason = redact_text(redactor, e->reason);
        if (reason == NULL) {
            return -1;
        }
        rc = PUT(b, ",\"reason\":") < 0 || put_json_str(b, reason) < 0 ? -1 : 0;
        Py_DECREF(reason);
        if (rc < 0) {
            return -1;
        }
    }
    if (has_fields) {
        if (PUT(b, ",\"fields\":") < 0) {
            return -1;
        }
        if ((rc = put_fields_remembered(b, redactor, e->fields)) != 0) {
            return rc;
        }
    }
    if (PUT(b, "}") < 0) {
        return -1;
    }
    if (PyUnicode_GET_LENGTH(e->client_ip) > 0) {
        if (PUT(b, ",\"source\":{\"ip\":") < 0 || put_json_str(b, e->client_ip) < 0 ||
            PUT(b, "},\"client\":{\"ip\":") < 0 || put_json_str(b, e->client_ip) < 0 ||
            PUT(b, "}") < 0) {
            return -1;
        }
    }
    if (e->user_id != Py_None) {
        *user = redact_text(redactor, e->user_id);
        if (*user == NULL || PUT(b, ",\"user\":{\"id\":") < 0 || put_json_str(b, *user) < 0 ||
            PUT(b, "}") < 0) {
            return -1;
        }
    }
    else {
        *user = Py_NewRef(Py_None);
    }
    return PUT(b, "}\n");
}

/* The outcomes the event store keeps, and the answer for the last outcome asked about (a
 * reference held, so that its address cannot be reused while it is remembered) */
typedef struct {
    PyObject *set;
    PyObject *last;
    int kept;
} Keep;

static int
keeps(Keep *keep, PyObject *outcome)
{
    if (outcome != keep->last) {
        int kept = PySet_Contains(keep->set, outcome);
        if (kept < 0) {
            return -1;
        }
        Py_XSETREF(keep->last, Py_NewRef(outcome));
        keep->kept = kept;
    }
    return keep->kept;
}

/* the security line of ``event`` appended to ``b``: 0, or -1 with an exception and nothing
 * appended. ``*row`` is its StoredEvent (a new reference) when ``keep`` is NULL or keeps the
 * event's outcome, else NULL. ``custom``: whether the redactor has path patterns of its own,
 * -1 to ask it. */
static int
security_into(Buf *b, PyObject *event, PyObject *redactor, PyObject *stamps, Keep *keep,
              int custom, PyObject **row)
{
    Event e;
    PyObject *user = NULL, *request_id = NULL, *pair, *found;
    Py_ssize_t mark = b->len;
    int rc, alert = 0;
    *row = NULL;
    rc = event_read(&e, event);
    if (rc == 0) {
        rc = format_security(b, &e, redactor, custom, &user, &request_id, &alert);
    }
    if (rc == 0) {
        int kept = keep == NULL ? 1 : keeps(keep, e.outcome);
        if (kept > 0) {
            /* the stored document is the line without its newline */
            PyObject *document = PyBytes_FromStringAndSize(b->data + mark, b->len - mark - 1);
            if (document == NULL) {
                kept = -1;
            }
            else {
                PyObject *args[9] = {
                    e.timestamp, alert ? s_alert_dataset : s_security_dataset, e.action,
                    e.outcome, user, e.client_ip, request_id, e.status, document,
                };
                *row = PyObject_Vectorcall(stored_type, args, 9, NULL);
                Py_DECREF(document);
                kept = *row == NULL ? -1 : 1;
            }
        }
        rc = kept < 0 ? -1 : 0;
    }
    Py_XDECREF(user);
    Py_XDECREF(request_id);
    event_clear(&e);
    if (rc == 0) {
        return 0;
    }
    b->len = mark;
    if (rc < 0) {
        return -1;
    }
    /* an event the fast path does not know: the Python function's (line, row), whole */
    pair = PyObject_CallFunctionObjArgs(security_fallback, event, redactor, stamps, NULL);
    if (pair == NULL) {
        return -1;
    }
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        Py_DECREF(pair);
        PyErr_SetString(PyExc_TypeError, "security_line answered something else");
        return -1;
    }
    found = PyTuple_GET_ITEM(pair, 1);
    if (keep == NULL) {
        rc = 1;
    }
    else if (PyTuple_Check(found) && PyTuple_GET_SIZE(found) > 3) {
        rc = PySet_Contains(keep->set, PyTuple_GET_ITEM(found, 3));
    }
    else {
        rc = 0;
    }
    if (rc < 0 || put_answer(b, Py_NewRef(PyTuple_GET_ITEM(pair, 0))) < 0) {
        b->len = mark;
        Py_DECREF(pair);
        return -1;
    }
    if (rc > 0) {
        *row = Py_NewRef(found);
    }
    Py_DECREF(pair);
    return 0;
}

/* (line, StoredEvent) of ``event``, or NULL */
static PyObject *
security_line_impl(PyObject *event, PyObject *redactor, PyObject *stamps)
{
    Buf b;
    PyObject *row, *line, *result;
    buf_init(&b);
    if (security_into(&b, event, redactor, stamps, NULL, -1, &row) < 0) {
        buf_free(&b);
        return NULL;
    }
    line = finish(&b);
    if (line == NULL) {
        Py_XDECREF(row);
        return NULL;
    }
    result = PyTuple_Pack(2, line, row != NULL ? row : Py_None);
    Py_DECREF(line);
    Py_XDECREF(row);
    return result;
}

/* -- module functions */

static int
configured(void)
{
    if (stored_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_bastion_ecs.configure() was not called");
        return 0;
    }
    return 1;
}

static PyObject *
configure(PyObject *module, PyObject *args)
{
    PyObject *stored, *access, *security;
    Py_ssize_t shortest;
    (void)module;
    if (!PyArg_ParseTuple(args, "OOOn", &stored, &access, &security, &shortest)) {
        return NULL;
    }
    Py_XSETREF(stored_type, Py_NewRef(stored));
    Py_XSETREF(access_fallback, Py_NewRef(access));
    Py_XSETREF(security_fallback, Py_NewRef(security));
    shortest_secret = shortest;
    Py_RETURN_NONE;
}

static PyObject *
access_line(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "access_line(record, redactor, stamps)");
        return NULL;
    }
    if (!configured()) {
        return NULL;
    }
    return access_line_impl(args[0], args[1], args[2], -1);
}

static PyObject *
security_line(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "security_line(event, redactor, stamps=None)");
        return NULL;
    }
    if (!configured()) {
        return NULL;
    }
    return security_line_impl(args[0], args[1], nargs == 3 ? args[2] : Py_None);
}

/* A failure the writer counts and logs (the Python loop catches the same): any Exception of one
 * item (a bad type, an infinite timestamp, a field name that is not a str), which loses that item
 * only; never the writer thread. */
static int
keep_failure(PyObject *failures)
{
    PyObject *type, *value, *traceback;
    int rc;
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    rc = PyList_Append(failures, value != NULL ? value : type);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    return rc;
}

/* The block under construction: a bytes object the appender alone references, written in place
 * (as PyBytes_FromStringAndSize(NULL, n) allows) and handed over by take() as it is, given its
 * length: no copy of the block between the lines and the file. */
typedef struct {
    PyObject *bytes; /* NULL until the first line of a block */
    Py_ssize_t len;
    Py_ssize_t cap;  /* of ``bytes``; 0 without */
    Py_ssize_t hint; /* the capacity a new block starts with (the last block's, bounded) */
} Block;

#define BLOCK_FIRST (64 * 1024)
#define APPENDER_KEPT_BYTES (4 * 1024 * 1024) /* a block larger than this is no size hint */

/* room for ``more`` bytes; a new, larger bytes object when the block grows (the lines in it are
 * copied, and the old object let go only once the new one exists: a failure loses nothing) */
static int
block_reserve(Block *k, Py_ssize_t more)
{
    Py_ssize_t cap;
    PyObject *bigger;
    if (k->len + more <= k->cap) {
        return 0;
    }
    cap = k->cap ? 2 * k->cap : k->hint;
    while (cap < k->len + more) {
        cap *= 2;
    }
    bigger = PyBytes_FromStringAndSize(NULL, cap);
    if (bigger == NULL) {
        return -1;
    }
    if (k->bytes != NULL) {
        memcpy(PyBytes_AS_STRING(bigger), PyBytes_AS_STRING(k->bytes), (size_t)k->len);
        Py_DECREF(k->bytes);
    }
    k->bytes = bigger;
    k->cap = cap;
    return 0;
}

static int
block_put(Block *k, const char *s, Py_ssize_t n)
{
    if (block_reserve(k, n) < 0) {
        return -1;
    }
    memcpy(PyBytes_AS_STRING(k->bytes) + k->len, s, (size_t)n);
    k->len += n;
    return 0;
}

/* the block's lines as a bytes object (a new reference), the block emptied. The object keeps
 * its allocation and gets its length (no realloc, so nothing can fail here): the unused end is
 * freed with it, once the sinks have written it. */
static PyObject *
block_take(Block *k)
{
    PyObject *taken = k->bytes;
    if (taken == NULL || k->len == 0) {
        return PyBytes_FromStringAndSize(NULL, 0);
    }
    Py_SET_SIZE(taken, k->len);
    PyBytes_AS_STRING(taken)[k->len] = '\0';
    k->hint = k->cap <= APPENDER_KEPT_BYTES ? k->cap : BLOCK_FIRST;
    k->bytes = NULL;
    k->len = k->cap = 0;
    return taken;
}

static void
block_init(Block *k)
{
    k->bytes = NULL;
    k->len = k->cap = 0;
    k->hint = BLOCK_FIRST;
}

/* Appender(capacity, redactor, stamps, keep, with_access, *, wake=None, every=0, max_bytes=0)
 *
 * The event writer's buffer. Called with an item (an access record, a tuple; or a security
 * event), it formats the item's line at once, while the item is still in the CPU's caches, and
 * appends it to a block of lines: access records only when ``with_access``; a security event's
 * row (StoredEvent) goes to a list too when its outcome is in the set ``keep``. Once ``capacity``
 * lines wait, or ``max_bytes`` of lines (when not 0; the block may pass it by its last line),
 * further items are counted in ``dropped`` and left out. ``wake()`` is called when
 * ``every`` lines wait. ``take()`` hands over (block, lines, rows, failures) and starts afresh:
 * the writer thread only writes.
 *
 * No item is kept: nothing waits for the writer thread but bytes (before, thousands of event
 * objects waited for it, read back from main memory, and held the garbage collector's
 * allocation count up). An item that cannot be formatted (any Exception) costs that item only:
 * its exception waits in ``failures`` for the writer to count and log. A line is formatted into
 * a buffer of its own first and appended whole, so that the redactor's Python code, during which
 * another thread may append, never sees half a line in the block. */
typedef struct {
    PyObject_HEAD
    Block out;
    Py_ssize_t lines;
    PyObject *rows;
    PyObject *failures;
    PyObject *redactor;
    PyObject *stamps;
    Keep keep;
    int with_access;
    int custom;
    PyObject *wake; /* or NULL */
    Py_ssize_t every;
    Py_ssize_t capacity;
    Py_ssize_t max_bytes; /* or 0: no bound on the block's bytes */
    Py_ssize_t dropped;
    vectorcallfunc vectorcall;
} Appender;

static PyObject *appender_vectorcall(PyObject *, PyObject *const *, size_t, PyObject *);

static int
appender_init(Appender *self, PyObject *args, PyObject *kwargs)
{
    PyObject *redactor, *stamps, *keep, *wake = Py_None, *rows, *failures;
    Py_ssize_t capacity, every = 0, max_bytes = 0;
    int with_access, custom;
    static char *names[] = {"capacity", "redactor", "stamps", "keep", "with_access",
                            "wake", "every", "max_bytes", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "nOOOp|$Onn", names, &capacity, &redactor,
                                     &stamps, &keep, &with_access, &wake, &every, &max_bytes)) {
        return -1;
    }
    if (max_bytes < 0) {
        PyErr_SetString(PyExc_ValueError, "Appender(max_bytes=...) takes 0 (no bound) or more");
        return -1;
    }
    if (!configured()) {
        return -1;
    }
    if (!PyAnySet_Check(keep)) {
        PyErr_SetString(PyExc_TypeError, "Appender(keep=...) takes a set of outcomes");
        return -1;
    }
    if (wake != Py_None && !PyCallable_Check(wake)) {
        PyErr_SetString(PyExc_TypeError, "Appender(wake=...) takes a callable");
        return -1;
    }
    custom = custom_paths(redactor); /* a redactor's rules are fixed when it is built */
    if (custom < 0) {
        return -1;
    }
    rows = PyList_New(0);
    failures = PyList_New(0);
    if (rows == NULL || failures == NULL) {
        Py_XDECREF(rows);
        Py_XDECREF(failures);
        return -1;
    }
    Py_CLEAR(self->out.bytes);
    block_init(&self->out);
    self->lines = 0;
    Py_XSETREF(self->rows, rows);
    Py_XSETREF(self->failures, failures);
    Py_XSETREF(self->redactor, Py_NewRef(redactor));
    Py_XSETREF(self->stamps, Py_NewRef(stamps));
    Py_XSETREF(self->keep.set, Py_NewRef(keep));
    Py_CLEAR(self->keep.last);
    self->with_access = with_access;
    self->custom = custom;
    Py_XSETREF(self->wake, wake == Py_None ? NULL : Py_NewRef(wake));
    self->every = every;
    self->capacity = capacity;
    self->max_bytes = max_bytes;
    self->dropped = 0;
    return 0;
}

static PyObject *
appender_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Appender *self = (Appender *)callable;
    PyObject *item, *row = NULL;
    Buf line;
    Py_ssize_t mark;
    int rc;
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "Appender takes one item");
        return NULL;
    }
    if (self->rows == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Appender not initialised");
        return NULL;
    }
    /* full: ``capacity`` lines, or ``max_bytes`` of them (long paths make long lines) */
    if (self->lines >= self->capacity ||
        (self->max_bytes > 0 && self->out.len >= self->max_bytes)) {
        self->dropped++;
        Py_RETURN_NONE;
    }
    item = args[0];
    buf_init(&line);
    if (PyTuple_CheckExact(item)) {
        if (!self->with_access) { /* access lines go to sinks only, never to the store */
            Py_RETURN_NONE;
        }
        rc = access_into(&line, item, self->redactor, self->stamps, self->custom);
    }
    else {
        rc = security_into(&line, item, self->redactor, self->stamps, &self->keep, self->custom,
                           &row);
    }
    if (rc < 0) {
        buf_free(&line);
        if (keep_failure(self->failures) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    mark = self->out.len;
    rc = block_put(&self->out, line.data, line.len);
    buf_free(&line);
    if (rc == 0 && row != NULL && (rc = PyList_Append(self->rows, row)) < 0) {
        self->out.len = mark; /* the line and its row, or neither */
    }
    Py_XDECREF(row);
    if (rc < 0) {
        return NULL;
    }
    self->lines++;
    if (self->wake != NULL && self->lines == self->every) {
        /* the writer's own wake-up: were it ever to fail, the request must not (the thread still
         * comes at its interval) */
        PyObject *done = PyObject_CallNoArgs(self->wake);
        if (done == NULL) {
            PyErr_WriteUnraisable(self->wake);
        }
        Py_XDECREF(done);
    }
    Py_RETURN_NONE;
}

/* take() -> (block, lines, rows, failures) */
static PyObject *
appender_take(Appender *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *block, *count, *rows, *failures, *result;
    if (self->rows == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Appender not initialised");
        return NULL;
    }
    count = PyLong_FromSsize_t(self->lines);
    rows = PyList_New(0);
    failures = PyList_New(0);
    result = PyTuple_New(4);
    /* last: once taken, the block is the result's (a failure before keeps it for the next take) */
    block = count && rows && failures && result ? block_take(&self->out) : NULL;
    if (block == NULL || count == NULL || rows == NULL || failures == NULL || result == NULL) {
        Py_XDECREF(block);
        Py_XDECREF(count);
        Py_XDECREF(rows);
        Py_XDECREF(failures);
        Py_XDECREF(result);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, block);
    PyTuple_SET_ITEM(result, 1, count);
    PyTuple_SET_ITEM(result, 2, self->rows); /* the appender's references, handed over */
    PyTuple_SET_ITEM(result, 3, self->failures);
    self->rows = rows;
    self->failures = failures;
    self->lines = 0;
    return result;
}

static Py_ssize_t
appender_length(Appender *self)
{
    return self->lines;
}

static PyObject *
appender_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    Appender *self = (Appender *)type->tp_alloc(type, 0);
    (void)args;
    (void)kwargs;
    if (self != NULL) {
        block_init(&self->out);
        self->vectorcall = appender_vectorcall;
    }
    return (PyObject *)self;
}

static int
appender_traverse(Appender *self, visitproc visit, void *arg)
{
    Py_VISIT(self->rows);
    Py_VISIT(self->failures);
    Py_VISIT(self->redactor);
    Py_VISIT(self->stamps);
    Py_VISIT(self->keep.set);
    Py_VISIT(self->keep.last);
    Py_VISIT(self->wake);
    return 0;
}

static int
appender_clear(Appender *self)
{
    Py_CLEAR(self->rows);
    Py_CLEAR(self->failures);
    Py_CLEAR(self->redactor);
    Py_CLEAR(self->stamps);
    Py_CLEAR(self->keep.set);
    Py_CLEAR(self->keep.last);
    Py_CLEAR(self->wake);
    return 0;
}

static void
appender_dealloc(Appender *self)
{
    PyObject_GC_UnTrack(self);
    appender_clear(self);
    Py_CLEAR(self->out.bytes);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef appender_members[] = {
    {"dropped", T_PYSSIZET, offsetof(Appender, dropped), 0, "items refused: the block was full"},
    {"capacity", T_PYSSIZET, offsetof(Appender, capacity), READONLY, "lines the block holds"},
    {"max_bytes", T_PYSSIZET, offsetof(Appender, max_bytes), READONLY,
     "bytes the block holds before it refuses items (0: no bound)"},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef appender_methods[] = {
    {"take", (PyCFunction)appender_take, METH_NOARGS,
     "take() -> (block, lines, rows, failures): what waits, handed over; the appender starts"
     " afresh"},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods appender_sequence = {
    .sq_length = (lenfunc)appender_length,
};

static PyTypeObject AppenderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_bastion_ecs.Appender",
    .tp_basicsize = sizeof(Appender),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Appender(capacity, redactor, stamps, keep, with_access, *, wake=None, every=0,"
              " max_bytes=0):"
              " formats each item into a bounded block of lines; take() hands it over",
    .tp_new = appender_new,
    .tp_init = (initproc)appender_init,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Appender, vectorcall),
    .tp_traverse = (traverseproc)appender_traverse,
    .tp_clear = (inquiry)appender_clear,
    .tp_dealloc = (destructor)appender_dealloc,
    .tp_members = appender_members,
    .tp_methods = appender_methods,
    .tp_as_sequence = &appender_sequence,
};

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(StoredEvent, access_line, security_line, shortest_secret): the Python reference"},
    {"access_line", (PyCFunction)(void (*)(void))access_line, METH_FASTCALL,
     "access_line(record, redactor, stamps) -> bytes, as bastion.observability.ecs.access_line"},
    {"security_line", (PyCFunction)(void (*)(void))security_line, METH_FASTCALL,
     "security_line(event, redactor, stamps=None) -> (bytes, StoredEvent), as the ecs one"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_bastion_ecs", "bastion's ECS event line formatting in C", -1, methods,
    NULL, NULL, NULL, NULL,
};

static int
intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__bastion_ecs(void)
{
    init_escapes();
    if (intern(&s_path, "path") < 0 || intern(&s_request_id, "request_id") < 0 ||
        intern(&s_text, "text") < 0 || intern(&s_secret_name, "secret_name") < 0 ||
        intern(&s_custom_paths, "custom_paths") < 0 || intern(&s_action, "action") < 0 ||
        intern(&s_outcome, "outcome") < 0 || intern(&s_timestamp, "timestamp") < 0 ||
        intern(&s_guard, "guard") < 0 || intern(&s_client_ip, "client_ip") < 0 ||
        intern(&s_method, "method") < 0 || intern(&s_status, "status") < 0 ||
        intern(&s_reason, "reason") < 0 || intern(&s_user_id, "user_id") < 0 ||
        intern(&s_fields, "fields") < 0 || intern(&s_alert_dataset, "bastion.alert") < 0 ||
        intern(&s_security_dataset, "bastion.security") < 0 || intern(&s_success, "success") < 0 ||
        intern(&s_failure, "failure") < 0) {
        return NULL;
    }
    {
        PyObject *fields[EVENT_FIELDS] = {
            s_action, s_outcome, s_timestamp, s_guard, s_request_id, s_client_ip,
            s_method, s_path, s_status, s_reason, s_user_id, s_fields,
        };
        memcpy(event_names, fields, sizeof(fields));
    }
    {
        PyObject *module;
        if (PyType_Ready(&AppenderType) < 0) {
            return NULL;
        }
        module = PyModule_Create(&module_def);
        if (module == NULL) {
            return NULL;
        }
        Py_INCREF(&AppenderType);
        if (PyModule_AddObject(module, "Appender", (PyObject *)&AppenderType) < 0) {
            Py_DECREF(&AppenderType);
            Py_DECREF(module);
            return NULL;
        }
        return module;
    }
}
