/*
 * fuzz_compiler.c - libFuzzer harness for the whole front end: lexer, parser,
 * checker, summary and emitter, on arbitrary bytes. Any crash, leak or
 * sanitizer report is a bug; diagnostics are expected and discarded.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink; /* opened once: diagnostics and output are discarded */
    if (!sink && !(sink = fopen("/dev/null", "w")))
        return 0;
    nnc_source src;
    nnc_source_from_string(&src, "fuzz.nn", (const char *)data, size);
    src.out = sink;
    nnc_stmt *stmts = nnc_parse(&src);
    model *m = src.errors == 0 ? nnc_check(&src, stmts) : NULL;
    if (m) {
        nnc_print_summary(sink, m);
        nnc_emit_dot(sink, m);
        nnc_emit(sink, m);
    }
    nnc_model_free(m);
    nnc_stmt_free(stmts);
    nnc_source_free(&src);
    return 0;
}
