/*
 * bf16.c - the printers the bfloat16 strategies share (bf16.h).
 */
#include "bf16.h"

void bf16_print_pair_sweep(cgen *g, const char *indent, const char *what, const char *pairs, const char *packed,
                           int packed_stride, int V, const char *broadcast, int broadcast_stride, int pair_stride,
                           const char *count)
{
    char at[32];
    if (pair_stride == 2)
        snprintf(at, sizeof at, "2 * i");
    else
        snprintf(at, sizeof at, "i * %d", pair_stride);
    cg(g, "%sfor (int i = 0; i < %s; i++) { /* %s 2i and 2i + 1 */\n", indent, pairs, what);
    cg(g, "%s    __m512bh vec[%d];\n%s    for (int v = 0; v < %d; v++)\n", indent, V, indent, V);
    cg(g, "%s        vec[v] = (__m512bh)_mm512_loadu_si512(%s + (i * %d + 16 * v) * 2);\n", indent, packed,
       packed_stride);
    cg(g, "%s    for (int p = 0; p < %s; p++) {\n", indent, count);
    cg(g, "%s        __m512bh x = pair_bf16(%s + p * %d + %s);\n", indent, broadcast, broadcast_stride, at);
    cg(g, "%s        for (int v = 0; v < %d; v++)\n", indent, V);
    cg(g, "%s            acc[p][v] = _mm512_dpbf16_ps(acc[p][v], x, vec[v]);\n", indent);
    cg(g, "%s    }\n%s}\n", indent, indent);
}

void bf16_print_prepare(cgen *g, const layer *l, const layer_role *r, pass_kind pass, const kernel_strategy *fp32)
{
    char up[64], wtp[80] = "NULL"; /* inference transposes nothing */
    upper(up, sizeof up, l->name);
    if (pass == PASS_TRAIN && r->needs_din)
        snprintf(wtp, sizeof wtp, "ws->%s_wtp", l->name);
    cg(g, "#if NNC_BF16\n");
    cgi(g, "%s_pack_bf16(ws->%s_wp, %s, params + %s_W);\n", l->name, l->name, wtp, up);
    if (fp32->prepare) {
        cg(g, "#else\n");
        fp32->prepare(g, l, r, pass);
    }
    cg(g, "#endif\n");
}

void bf16_print_forward(cgen *g, const layer *l, const step_args *a, const scratch_buf *bufs,
                        const kernel_strategy *fp32)
{
    char up[64], inh[96];
    upper(up, sizeof up, l->name);
    scratch_arg(inh, sizeof inh, "uint16_t", bufs, BF16_INH);
    cg(g, "#if NNC_BF16\n");
    cgi(g, "%s_forward_bf16(%s, %s, %s, ws->%s_wp, params + %s_B, lo, hi);\n", l->name, a->out, a->in, inh,
        l->name, up);
    cg(g, "#else\n");
    fp32->print_forward(g, l, a);
    cg(g, "#endif\n");
}

void bf16_print_backward(cgen *g, const layer *l, const step_args *a, const scratch_buf *bufs,
                         const kernel_strategy *fp32)
{
    char up[64], wtp[80] = "NULL", dzh[96] = "NULL"; /* NULL: the network's input needs no gradient */
    char dzp[96], wgrad_in[96];
    upper(up, sizeof up, l->name);
    scratch_arg(dzp, sizeof dzp, "uint16_t", bufs, BF16_DZP);
    scratch_arg(wgrad_in, sizeof wgrad_in, "uint16_t", bufs, BF16_WGRAD_IN);
    if (a->din) {
        snprintf(wtp, sizeof wtp, "ws->%s_wtp", l->name);
        scratch_arg(dzh, sizeof dzh, "uint16_t", bufs, BF16_DZH);
    }
    cg(g, "#if NNC_BF16\n");
    cgi(g, "%s_backward_bf16(%s, %s + %s_W, %s + %s_B, %s, %s, %s, %s, %s, %s, %s, lo, hi);\n", l->name,
        a->din ? a->din : "NULL", a->grads, up, a->grads, up, a->dout, a->out, a->in, dzp, wgrad_in, dzh, wtp);
    cg(g, "#else\n");
    fp32->print_backward(g, l, a);
    cg(g, "#endif\n");
}

void bf16_print_pack(cgen *g, const layer *l, const layer_role *r, int taps, int in, int out, const char *ins,
                     const char *outs)
{
    cg(g, "/* w in bfloat16: wp pairs %s (forward)", ins);
    if (r->needs_din)
        cg(g, ", wtp pairs %s (input gradient)", outs);
    cg(g, ". */\n");
    cg(g, "static void %s_pack_bf16(uint16_t *restrict wp, uint16_t *restrict wtp, const float *restrict w)\n{\n",
       l->name);
    cg(g, "    pair_rows_bf16(wp, w, %d, %d); /* pairs of rows [%s][%s] */\n", taps * in, out, ins, outs);
    if (!r->needs_din) {
        cg(g, "    (void)wtp;\n}\n\n");
        return;
    }
    cg(g, "    if (!wtp)\n        return; /* inference */\n");
    cg(g, "    float f[16];\n");
    cg(g, "    for (int k = 0; k < %d; k++)\n", taps);
    cg(g, "        for (int c = 0; c < %d; c += 8) /* 8 rows of w at a time: they stay in the cache */\n", in);
    cg(g, "            for (int i = 0; i < %d; i++) {\n", out / 2);
    cg(g, "                for (int j = 0; j < 8; j++) {\n");
    cg(g, "                    f[2 * j] = w[((size_t)k * %d + c + j) * %d + 2 * i];\n", in, out);
    cg(g, "                    f[2 * j + 1] = w[((size_t)k * %d + c + j) * %d + 2 * i + 1];\n                }\n", in, out);
    cg(g, "                to_bf16(wtp + (((size_t)k * %d + i) * %d + c) * 2, f, 16);\n            }\n}\n\n", out / 2, in);
}
