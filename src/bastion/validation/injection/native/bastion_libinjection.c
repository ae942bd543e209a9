/*
 * _bastion_libinjection: the smallest binding of libinjection (BSD, vendored beside this file)
 * that bastion's injection guard needs.
 *
 * One call per inspected value, both detectors in C: a Python-level call per detector would cost
 * more than the detection itself for the short strings API bodies are made of. A str is read as
 * its cached UTF-8 form (no copy for ASCII text); bytes are read in place.
 *
 * Licensed under the Apache License 2.0, like bastion; libinjection keeps its own licence
 * (libinjection/COPYING).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "libinjection.h"
#include "libinjection_sqli.h"

#define SCAN_SQLI 1
#define SCAN_XSS 2

static int
view(PyObject *arg, const char **data, Py_ssize_t *size)
{
    if (PyUnicode_Check(arg)) {
        *data = PyUnicode_AsUTF8AndSize(arg, size);
        return *data == NULL ? -1 : 0;
    }
    if (PyBytes_Check(arg)) {
        *data = PyBytes_AS_STRING(arg);
        *size = PyBytes_GET_SIZE(arg);
        return 0;
    }
    PyErr_SetString(PyExc_TypeError, "expected str or bytes");
    return -1;
}

static PyObject *
scan(PyObject *module, PyObject *arg)
{
    const char *data;
    Py_ssize_t size;
    char fingerprint[8];
    long found = 0;
    (void)module;
    if (view(arg, &data, &size) < 0) {
        return NULL;
    }
    if (libinjection_sqli(data, (size_t)size, fingerprint)) {
        found |= SCAN_SQLI;
    }
    if (libinjection_xss(data, (size_t)size)) {
        found |= SCAN_XSS;
    }
    return PyLong_FromLong(found);
}

static PyObject *
sqli_fingerprint(PyObject *module, PyObject *arg)
{
    const char *data;
    Py_ssize_t size;
    char fingerprint[8];
    (void)module;
    if (view(arg, &data, &size) < 0) {
        return NULL;
    }
    if (!libinjection_sqli(data, (size_t)size, fingerprint)) {
        Py_RETURN_NONE;
    }
    return PyUnicode_FromString(fingerprint);
}

static PyObject *
version(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyUnicode_FromString(libinjection_version());
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_O,
     "scan(value) -> int: SQLI (1) | XSS (2) for what libinjection finds in value"},
    {"sqli_fingerprint", sqli_fingerprint, METH_O,
     "sqli_fingerprint(value) -> str | None: libinjection's token fingerprint when SQLi"},
    {"version", version, METH_NOARGS, "version() -> str: the vendored libinjection version"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "_bastion_libinjection",
    "libinjection's SQLi and XSS detectors, for bastion's injection guard.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__bastion_libinjection(void)
{
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "SQLI", SCAN_SQLI) < 0
        || PyModule_AddIntConstant(module, "XSS", SCAN_XSS) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
