/* lexer_state.h - what the reentrant lexer carries between tokens. */
#ifndef NNC_LEXER_STATE_H
#define NNC_LEXER_STATE_H

#include "diag.h"

struct nnc_lex_state {
    nnc_source *src; /* for errors the lexer reports itself */
    int line, column;
    int at_line_start; /* no token yet on this line: EOF needs no NEWLINE */
};

#endif
