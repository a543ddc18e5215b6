/*
 * onnx.c - a trained model as an ONNX model (--export FILE.onnx): the
 * inference graph the compiler described (nnc_model.graph, one node a layer)
 * with the weights as initializers, written with a small protobuf encoder.
 *
 * The graph takes what nnc takes: uint8 pixels, [N][h][w][c] (NHWC, as MNIST
 * and --predict's images), N free. It casts them to float and preprocesses
 * them as nnc_prep_table does (scale: Mul; normalize: Sub the mean, Div by the
 * std; per-channel normalize: Div by 255, Sub mean[c], Div by std[c]),
 * transposes to NCHW, and runs the layers:
 *
 *   conv        Conv (pads from TensorFlow's 'same' split), weights OIHW
 *   dense       Gemm with transB = 1, weights [out][in] (PyTorch's layouts)
 *   maxpool     MaxPool           avgpool        AveragePool
 *   globalavg   GlobalAveragePool
 *   flatten     Flatten: NCHW order, the dense kernel after it permuted to
 *               match (nnc_torch_index); behind a Transpose to NHWC when what
 *               follows reads nnc's order
 *   batchnorm   BatchNormalization (not folded: the running statistics stay
 *               visible, as in the .safetensors)
 *   act         Relu, Sigmoid, Tanh, Softmax (axis 1); linear: nothing
 *   dropout     nothing (off at inference)
 *
 * A 1x1 image is a flat vector to nnc: a Flatten goes before the Gemm (or the
 * output) that reads one.
 *
 * The output is "probabilities" ([N][classes]) when the model ends in softmax,
 * else "output". Initializers keep the tensor tables' names. Opset 13, IR 7.
 *
 * Protobuf: each field is a varint key (number << 3 | wire type) then a
 * varint (type 0), 4 little-endian bytes (type 5), or a varint length and the
 * bytes (type 2: strings, raw data, nested messages). A nested message is
 * encoded into its own buffer first, then appended with its length. Field
 * numbers are onnx.proto's (ONNX 1.12).
 */
#include <stdlib.h>
#include <string.h>

#include "bytebuf.h"
#include "nncrt.h"

#define ONNX_OPSET 13
#define ONNX_IR_VERSION 7
enum { ONNX_FLOAT = 1, ONNX_UINT8 = 2 };           /* TensorProto.DataType */
enum { ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_INTS = 7 }; /* AttributeProto.AttributeType */
enum { WIRE_VARINT = 0, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

/* ---- protobuf ----------------------------------------------------------- */

static void pb_varint(buf_t *b, uint64_t v) {
    uint8_t byte[10];
    int n = 0;
    do {
        byte[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    buf_put(b, byte, (size_t)n);
}

static void pb_key(buf_t *b, int field, int wire) { pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire); }

static void pb_int(buf_t *b, int field, int64_t v) {
    pb_key(b, field, WIRE_VARINT);
    pb_varint(b, (uint64_t)v);
}

static void pb_bytes(buf_t *b, int field, const void *p, size_t n) {
    pb_key(b, field, WIRE_LEN);
    pb_varint(b, n);
    buf_put(b, p, n);
}

static void pb_string(buf_t *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }

/* Append the message in *sub as field `field` of b, and empty sub for the next one. */
static void pb_message(buf_t *b, int field, buf_t *sub) {
    pb_bytes(b, field, sub->p, sub->len);
    b->oom |= sub->oom;
    sub->len = 0;
}

/* ---- ONNX messages ------------------------------------------------------ */

/* The graph being built: its fields (GraphProto), and names for the values between nodes. */
typedef struct {
    buf_t graph, node, sub; /* node: the NodeProto being built; sub: a nested message's scratch */
    char value[96];               /* the name of the value the graph has computed so far */
    int rank;                     /* and its rank: 4 (NCHW) or 2 (flat) */
} onnx_graph;

/* AttributeProto: name 1, f 2, i 3, ints 8, type 20. */
static void attr_ints(onnx_graph *g, const char *name, int n, const int *v) {
    pb_string(&g->sub, 1, name);
    for (int i = 0; i < n; i++) pb_int(&g->sub, 8, v[i]);
    pb_int(&g->sub, 20, ATTR_INTS);
    pb_message(&g->node, 5, &g->sub);
}

static void attr_int(onnx_graph *g, const char *name, int v) {
    pb_string(&g->sub, 1, name);
    pb_int(&g->sub, 3, v);
    pb_int(&g->sub, 20, ATTR_INT);
    pb_message(&g->node, 5, &g->sub);
}

static void attr_float(onnx_graph *g, const char *name, float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    pb_string(&g->sub, 1, name);
    pb_key(&g->sub, 2, WIRE_FIXED32);
    buf_le(&g->sub, bits, 4);
    pb_int(&g->sub, 20, ATTR_FLOAT);
    pb_message(&g->node, 5, &g->sub);
}

/* Start a NodeProto (input 1, output 2, name 3, op_type 4, attribute 5): op_type on the current value
 * and the given initializers (NULL-terminated), its output named LAYER_OP; attributes follow, then
 * node_end(). */
static void node_begin(onnx_graph *g, const char *op, const char *layer, const char *const *extra) {
    pb_string(&g->node, 1, g->value);
    for (; extra && *extra; extra++) pb_string(&g->node, 1, *extra);
    snprintf(g->value, sizeof g->value, "%s_%s", layer, op);
    pb_string(&g->node, 2, g->value);
    pb_string(&g->node, 3, g->value);
    pb_string(&g->node, 4, op);
}

static void node_end(onnx_graph *g) { pb_message(&g->graph, 1, &g->node); }

/* A node with no attributes. */
static void node(onnx_graph *g, const char *op, const char *layer, const char *const *extra) {
    node_begin(g, op, layer, extra);
    node_end(g);
}

/* TensorProto (dims 1, data_type 2, name 8, raw_data 9) as an initializer (GraphProto field 5). */
static void initializer(onnx_graph *g, const char *name, int rank, const uint64_t *dims, const float *data,
                        size_t count) {
    for (int d = 0; d < rank; d++) pb_int(&g->sub, 1, (int64_t)dims[d]);
    pb_int(&g->sub, 2, ONNX_FLOAT);
    pb_string(&g->sub, 8, name);
    pb_key(&g->sub, 9, WIRE_LEN);
    pb_varint(&g->sub, 4 * count);
    buf_floats(&g->sub, data, count);
    pb_message(&g->graph, 5, &g->sub);
}

static void scalar(onnx_graph *g, const char *name, float v) { initializer(g, name, 0, NULL, &v, 1); }

/* A model tensor as an initializer in PyTorch's layout (OIHW, [out][in] with NCHW-flattened rows). */
static void tensor_initializer(onnx_graph *g, const nnc_tensor_info *t, const float *data) {
    float *torch = malloc(sizeof *torch * (t->count ? t->count : 1));
    if (!torch) {
        g->graph.oom = 1;
        return;
    }
    for (size_t i = 0; i < t->count; i++) torch[nnc_torch_index(t, i)] = data[i];
    uint64_t dims[4];
    int rank = nnc_torch_shape(t, dims);
    initializer(g, t->name, rank, dims, torch, t->count);
    free(torch);
}

/* ValueInfoProto (name 1, type 2) of a tensor [N][d1][d2]..., its first axis the free batch "N":
 * TypeProto.tensor_type 1 { elem_type 1, shape 2 { dim 1 { dim_value 1 | dim_param 2 } } }. */
static void value_info(onnx_graph *g, int field, const char *name, int elem_type, int rank, const int *dims) {
    buf_t dim = {0}, shape = {0}, tensor = {0}, type = {0};
    for (int d = 0; d < rank; d++) {
        if (d == 0) pb_string(&dim, 2, "N");
        else pb_int(&dim, 1, dims[d]);
        pb_message(&shape, 1, &dim);
    }
    pb_int(&tensor, 1, elem_type);
    pb_message(&tensor, 2, &shape);
    pb_message(&type, 1, &tensor);
    pb_string(&g->sub, 1, name);
    pb_message(&g->sub, 2, &type);
    pb_message(&g->graph, field, &g->sub);
    g->graph.oom |= dim.oom | shape.oom | tensor.oom | type.oom;
    free(dim.p), free(shape.p), free(tensor.p), free(type.p);
}

/* ---- the graph ---------------------------------------------------------- */

/* uint8 NHWC pixels -> float, nnc's preprocessing, NCHW. */
static void add_preprocessing(onnx_graph *g, const nnc_model *m, const float prep[2]) {
    int dims[4] = {0, m->in_h, m->in_w, m->in_c};
    value_info(g, 11, "pixels", ONNX_UINT8, 4, dims);
    snprintf(g->value, sizeof g->value, "pixels");
    node_begin(g, "Cast", "pixels", NULL);
    attr_int(g, "to", ONNX_FLOAT);
    node_end(g);
    if (m->prep == NNC_PREP_SCALE) {
        scalar(g, "prep.scale", prep[0]);
        node(g, "Mul", "prep", (const char *const[]){"prep.scale", NULL});
    } else if (m->prep == NNC_PREP_NORMALIZE) {
        scalar(g, "prep.mean", prep[0]);
        scalar(g, "prep.std", prep[1] > 0.0f ? prep[1] : 1.0f); /* as nnc_prep_table: a constant image stays centred */
        node(g, "Sub", "prep", (const char *const[]){"prep.mean", NULL});
        node(g, "Div", "prep", (const char *const[]){"prep.std", NULL});
    } else if (m->prep == NNC_PREP_CHANNELS) {
        /* torchvision's ToTensor then Normalize, as nnc_prep_table: (v / 255 - mean[c]) / std[c], the
         * constants shaped [C] so that they broadcast over the last (channel) axis of NHWC. */
        const uint64_t channels = (uint64_t)m->in_c;
        scalar(g, "prep.255", 255.0f);
        initializer(g, "prep.mean", 1, &channels, m->prep_mean, channels);
        initializer(g, "prep.std", 1, &channels, m->prep_std, channels);
        node(g, "Div", "prep_unit", (const char *const[]){"prep.255", NULL});
        node(g, "Sub", "prep", (const char *const[]){"prep.mean", NULL});
        node(g, "Div", "prep", (const char *const[]){"prep.std", NULL});
    }
    node_begin(g, "Transpose", "nchw", NULL);
    attr_ints(g, "perm", 4, (const int[]){0, 3, 1, 2});
    node_end(g);
    g->rank = 4;
}

static void add_flatten(onnx_graph *g, const char *layer) {
    node_begin(g, "Flatten", layer, NULL);
    attr_int(g, "axis", 1);
    node_end(g);
    g->rank = 2;
}

/* A layer's own op, its weights as initializers. */
static int add_layer_op(onnx_graph *g, const nnc_model *m, const nnc_graph_node *n, const float *params,
                        const float *state) {
    const nnc_tensor_info *w = n->tensor >= 0 ? &m->tensors[n->tensor] : NULL;
    const nnc_tensor_info *s = n->state_tensor >= 0 ? &m->state_tensors[n->state_tensor] : NULL;
    if (w) tensor_initializer(g, &w[0], params + w[0].offset), tensor_initializer(g, &w[1], params + w[1].offset);
    if (s) tensor_initializer(g, &s[0], state + s[0].offset), tensor_initializer(g, &s[1], state + s[1].offset);
    switch (n->op) {
    case NNC_NODE_CONV:
        if (!w || g->rank != 4) return -1;
        node_begin(g, "Conv", n->name, (const char *const[]){w[0].name, w[1].name, NULL});
        attr_ints(g, "kernel_shape", 2, n->kernel);
        attr_ints(g, "strides", 2, n->stride);
        attr_ints(g, "pads", 4, n->pads);
        node_end(g);
        return 0;
    case NNC_NODE_DENSE:
        if (!w) return -1;
        if (g->rank == 4) add_flatten(g, n->name); /* a 1x1 image, which nnc takes as a flat vector */
        node_begin(g, "Gemm", n->name, (const char *const[]){w[0].name, w[1].name, NULL});
        attr_int(g, "transB", 1);
        node_end(g);
        return 0;
    case NNC_NODE_MAXPOOL:
    case NNC_NODE_AVGPOOL:
        if (g->rank != 4) return -1;
        node_begin(g, n->op == NNC_NODE_MAXPOOL ? "MaxPool" : "AveragePool", n->name, NULL);
        attr_ints(g, "kernel_shape", 2, n->kernel);
        attr_ints(g, "strides", 2, n->stride);
        node_end(g);
        return 0;
    case NNC_NODE_GLOBALAVGPOOL:
        if (g->rank != 4) return -1;
        node(g, "GlobalAveragePool", n->name, NULL);
        return 0;
    case NNC_NODE_FLATTEN:
        if (g->rank == 4 && n->flatten_nhwc) {
            node_begin(g, "Transpose", n->name, NULL);
            attr_ints(g, "perm", 4, (const int[]){0, 2, 3, 1});
            node_end(g);
        }
        if (g->rank == 4) add_flatten(g, n->name);
        return 0;
    case NNC_NODE_BATCHNORM:
        if (!w || !s) return -1;
        node_begin(g, "BatchNormalization", n->name,
                   (const char *const[]){w[0].name, w[1].name, s[0].name, s[1].name, NULL});
        attr_float(g, "epsilon", n->eps);
        node_end(g);
        return 0;
    case NNC_NODE_ACTIVATION:
        return 0;
    }
    return -1;
}

static void add_activation(onnx_graph *g, const nnc_graph_node *n) {
    static const char *const op[] = {[NNC_ACT_RELU] = "Relu", [NNC_ACT_SIGMOID] = "Sigmoid",
                                     [NNC_ACT_TANH] = "Tanh", [NNC_ACT_SOFTMAX] = "Softmax"};
    if (n->act == NNC_ACT_LINEAR) return;
    node_begin(g, op[n->act], n->name, NULL);
    if (n->act == NNC_ACT_SOFTMAX) attr_int(g, "axis", 1); /* the channels (a flat vector's only axis) */
    node_end(g);
}

/* The graph's output: probabilities when the model ends in softmax. */
static const char *output_name(const nnc_model *m) {
    return m->graph[m->n_graph_nodes - 1].act == NNC_ACT_SOFTMAX ? "probabilities" : "output";
}

/* The last value, renamed as the graph's output by an Identity node. */
static void add_output(onnx_graph *g, const nnc_model *m) {
    const char *name = output_name(m);
    pb_string(&g->node, 1, g->value);
    pb_string(&g->node, 2, name);
    pb_string(&g->node, 3, name);
    pb_string(&g->node, 4, "Identity");
    node_end(g);
    value_info(g, 12, name, ONNX_FLOAT, 2, (const int[]){0, m->n_classes});
}

static void model_metadata(buf_t *model, buf_t *entry, const char *key, const char *value) {
    pb_string(entry, 1, key);
    pb_string(entry, 2, value);
    pb_message(model, 14, entry); /* ModelProto.metadata_props: StringStringEntryProto */
}

int nnc_onnx_encode(const nnc_model *m, const float *params, const float *state, const float prep[2], uint8_t **out,
                    size_t *size) {
    onnx_graph g = {0};
    buf_t model = {0};
    int rc = m->n_graph_nodes > 0 ? 0 : -2;
    add_preprocessing(&g, m, prep);
    for (int i = 0; i < m->n_graph_nodes && rc == 0; i++) {
        rc = add_layer_op(&g, m, &m->graph[i], params, state) == 0 ? 0 : -2;
        add_activation(&g, &m->graph[i]);
    }
    if (rc == 0 && g.rank == 4) add_flatten(&g, "output"); /* [N][classes][1][1] -> [N][classes] */
    if (rc == 0) {
        add_output(&g, m);
        pb_string(&g.graph, 2, m->name); /* GraphProto.name */
        /* ModelProto: ir_version 1, producer_name 2, producer_version 3, doc_string 6, graph 7, opset_import 8 */
        pb_int(&model, 1, ONNX_IR_VERSION);
        pb_string(&model, 2, "nnc");
        pb_string(&model, 3, NNC_VERSION);
        char doc[512];
        snprintf(doc, sizeof doc, "%s, compiled by nnc from %s: uint8 pixels [N][%d][%d][%d] in, %s [N][%d] out",
                 m->name, m->source ? m->source : "?", m->in_h, m->in_w, m->in_c, output_name(m), m->n_classes);
        pb_string(&model, 6, doc);
        pb_message(&model, 7, &g.graph);
        pb_string(&g.sub, 1, ""); /* OperatorSetIdProto: domain 1 (the default), version 2 */
        pb_int(&g.sub, 2, ONNX_OPSET);
        pb_message(&model, 8, &g.sub);
        model_metadata(&model, &g.sub, "model", m->name);
        model_metadata(&model, &g.sub, "source", m->source ? m->source : "");
        if (g.graph.oom || g.sub.oom || g.node.oom || model.oom) rc = -1;
    }
    free(g.graph.p), free(g.node.p), free(g.sub.p);
    if (rc != 0) {
        free(model.p);
        return rc;
    }
    *out = model.p, *size = model.len;
    return 0;
}
