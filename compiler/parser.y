/*
 * parser.y - the grammar of the nnc model language.
 *
 * The grammar knows lines, words and argument shapes, nothing more: a
 * statement is `WORD arg*` ended by a newline. What the words mean (layers,
 * the train block, options) is the checker's business (check.c), which can
 * then say precisely what is wrong and where.
 *
 *   program   : line*
 *   line      : statement? NEWLINE
 *   statement : WORD arg*
 *   arg       : NUMBER | NUMBER '/' NUMBER | NUMBER ':' NUMBER | DIMS
 *             | WORD | WORD '=' value
 *   value     : NUMBER | NUMBER '/' NUMBER | WORD | list
 *   list      : NUMBER ',' NUMBER | list ',' NUMBER
 *
 * A syntax error skips to the end of its line, so one run reports the errors
 * of every line.
 */
%define api.pure full
%define parse.error verbose
%define api.location.type {nnc_loc}
%locations
%expect 0

%code requires {
#include "ast.h"
#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif
}

%param {yyscan_t scanner}
%parse-param {nnc_source *src} {nnc_stmt **result}

%union {
    char *word;
    nnc_arg *arg;
    nnc_stmt *stmt;
}

%code {
#include <stdlib.h>
#include <string.h>
#include "lexer_state.h"
#include "lexer.h"

static void yyerror(nnc_loc *loc, yyscan_t scanner, nnc_source *src, nnc_stmt **result, const char *msg);
static nnc_arg *fraction(nnc_arg *num, nnc_arg *den, nnc_loc loc, nnc_source *src);
static nnc_arg *pair(nnc_arg *a, nnc_arg *b, nnc_loc loc);
static nnc_arg *list_append(nnc_arg *list, nnc_arg *num, nnc_loc loc, nnc_source *src);
}

%token <word> WORD "word"
%token <arg> NUMBER "number"
%token <arg> DIMS "dimensions such as 3x3"
%token NEWLINE "end of line"

%type <stmt> lines statement
%type <arg> args arg value list

%destructor { free($$); } <word>
%destructor { nnc_arg_free($$); } <arg>
%destructor { nnc_stmt_free($$); } <stmt>

%%

program
    : lines                     { *result = $1; }
    ;

lines
    : %empty                    { $$ = NULL; }
    | lines NEWLINE             { $$ = $1; }
    | lines statement NEWLINE   { $$ = nnc_stmt_append($1, $2); }
    | lines error NEWLINE       { $$ = $1; yyerrok; }
    ;

statement
    : WORD args                 { $$ = nnc_stmt_new(@1, $1, $2); }
    ;

args
    : %empty                    { $$ = NULL; }
    | args arg                  { $$ = nnc_arg_append($1, $2); }
    ;

arg
    : NUMBER                    { $$ = $1; }
    | NUMBER '/' NUMBER         { $$ = fraction($1, $3, @$, src); }
    | NUMBER ':' NUMBER         { $$ = pair($1, $3, @$); }
    | DIMS                      { $$ = $1; }
    | WORD                      { $$ = nnc_arg_new(ARG_WORD, @1, $1); free($1); }
    | WORD '=' value            {
                                  $$ = nnc_arg_new(ARG_OPTION, @$, $1);
                                  free($1);
                                  $$->value = $3;
                                }
    ;

value
    : NUMBER                    { $$ = $1; }
    | NUMBER '/' NUMBER         { $$ = fraction($1, $3, @$, src); }
    | WORD                      { $$ = nnc_arg_new(ARG_WORD, @1, $1); free($1); }
    | list                      { $$ = $1; }
    ;

list
    : NUMBER ',' NUMBER         { $$ = list_append(list_append(NULL, $1, @1, src), $3, @$, src); }
    | list ',' NUMBER           { $$ = list_append($1, $3, @$, src); }
    ;

%%

static void yyerror(nnc_loc *loc, yyscan_t scanner, nnc_source *src, nnc_stmt **result, const char *msg)
{
    (void)scanner;
    (void)result;
    /* Bison says "syntax error, unexpected X, expecting Y"; keep the facts, drop the preamble. */
    const char *prefix = "syntax error, ";
    if (strncmp(msg, prefix, strlen(prefix)) == 0)
        msg += strlen(prefix);
    nnc_error(src, *loc, "%s", msg);
}

/* `1/255`: a number written as a fraction (the seeds scale pixels by 1/255). */
static nnc_arg *fraction(nnc_arg *num, nnc_arg *den, nnc_loc loc, nnc_source *src)
{
    nnc_arg *arg = nnc_arg_new(ARG_NUMBER, loc, "");
    size_t n = strlen(num->text) + strlen(den->text) + 2;
    char *text = nnc_xmalloc(n);
    snprintf(text, n, "%s/%s", num->text, den->text);
    free(arg->text);
    arg->text = text;
    if (den->number == 0) {
        nnc_error(src, den->loc, "division by zero in '%s'", text);
        arg->number = 0;
    } else {
        arg->number = num->number / den->number;
    }
    arg->is_integer = 0;
    nnc_arg_free(num);
    nnc_arg_free(den);
    return arg;
}

/* `5:0.1`: a pair, as schedule phases are written (epochs:learning-rate). */
static nnc_arg *pair(nnc_arg *a, nnc_arg *b, nnc_loc loc)
{
    nnc_arg *arg = nnc_arg_new(ARG_PAIR, loc, "");
    size_t n = strlen(a->text) + strlen(b->text) + 2;
    char *text = nnc_xmalloc(n);
    snprintf(text, n, "%s:%s", a->text, b->text);
    free(arg->text);
    arg->text = text;
    arg->first = a->number;
    arg->second = b->number;
    arg->is_integer = a->is_integer;
    nnc_arg_free(a);
    nnc_arg_free(b);
    return arg;
}

/* `0.49,0.48,0.45`: numbers one after another (NULL list: a new one), one a channel. */
static nnc_arg *list_append(nnc_arg *list, nnc_arg *num, nnc_loc loc, nnc_source *src)
{
    if (!list)
        list = nnc_arg_new(ARG_LIST, loc, "");
    size_t n = strlen(list->text) + strlen(num->text) + 2;
    char *text = nnc_xmalloc(n);
    snprintf(text, n, "%s%s%s", list->text, list->nlist ? "," : "", num->text);
    free(list->text);
    list->text = text;
    list->loc = (nnc_loc){list->loc.first_line, list->loc.first_column, loc.last_line, loc.last_column};
    if (list->nlist == NNC_MAX_LIST)
        nnc_error(src, num->loc, "a list holds at most %d numbers (one a channel)", NNC_MAX_LIST);
    else
        list->list[list->nlist++] = num->number;
    nnc_arg_free(num);
    return list;
}

nnc_stmt *nnc_parse(nnc_source *src)
{
    struct nnc_lex_state state = {.src = src, .line = 1, .column = 1, .at_line_start = 1};
    yyscan_t scanner;
    if (yylex_init_extra(&state, &scanner) != 0) {
        fprintf(stderr, "nnc: cannot start the lexer\n");
        exit(1);
    }
    YY_BUFFER_STATE buffer = yy_scan_bytes(src->text, (int)src->length, scanner);
    nnc_stmt *result = NULL;
    if (yyparse(scanner, src, &result) != 0) {
        /* Only memory exhaustion or an unrecoverable error gets here. */
        nnc_stmt_free(result);
        result = NULL;
        if (src->errors == 0)
            nnc_error(src, (nnc_loc){0, 0, 0, 0}, "cannot parse the file");
    }
    yy_delete_buffer(buffer, scanner);
    yylex_destroy(scanner);
    return result;
}
