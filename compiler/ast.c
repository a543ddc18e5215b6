/* ast.c - constructors and destructors for the syntax tree. */
#define _POSIX_C_SOURCE 200809L
#include "ast.h"

#include <stdlib.h>
#include <string.h>

static void *xcalloc(size_t size)
{
    void *p = calloc(1, size);
    if (!p)
        nnc_out_of_memory();
    return p;
}

nnc_arg *nnc_arg_new(nnc_arg_kind kind, nnc_loc loc, const char *text)
{
    nnc_arg *arg = xcalloc(sizeof *arg);
    arg->kind = kind;
    arg->loc = loc;
    arg->text = nnc_xstrdup(text ? text : "");
    return arg;
}

nnc_arg *nnc_arg_append(nnc_arg *list, nnc_arg *arg)
{
    if (!list)
        return arg;
    nnc_arg *last = list;
    while (last->next)
        last = last->next;
    last->next = arg;
    return list;
}

void nnc_arg_free(nnc_arg *arg)
{
    while (arg) {
        nnc_arg *next = arg->next;
        nnc_arg_free(arg->value);
        free(arg->text);
        free(arg);
        arg = next;
    }
}

nnc_stmt *nnc_stmt_new(nnc_loc loc, char *head, nnc_arg *args)
{
    nnc_stmt *stmt = xcalloc(sizeof *stmt);
    stmt->loc = loc;
    stmt->head = head;
    stmt->args = args;
    return stmt;
}

nnc_stmt *nnc_stmt_append(nnc_stmt *list, nnc_stmt *stmt)
{
    if (!list)
        return stmt;
    nnc_stmt *last = list;
    while (last->next)
        last = last->next;
    last->next = stmt;
    return list;
}

void nnc_stmt_free(nnc_stmt *stmt)
{
    while (stmt) {
        nnc_stmt *next = stmt->next;
        nnc_arg_free(stmt->args);
        free(stmt->head);
        free(stmt);
        stmt = next;
    }
}
