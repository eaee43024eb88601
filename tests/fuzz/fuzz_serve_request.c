/* The server's request bodies (src/serve/api.c, compiled into this target):
 * the first byte picks the endpoint and the model (a bare encoder for
 * /embed and /v1/embeddings, a three-label classifier for /predict, a
 * one-output cross-encoder for /rerank, each on every endpoint; /info
 * too), the rest is the body, parsed and tokenized as the server does.
 * Then, standing in for the model, the job's outputs are filled and the
 * reply is written. */
#include "fuzz_common.h"

#include "core/json.h"
#include "io/safetensors.h"
#include "serve/serve.h"

#define TINY "tests/data/tiny-bert-seq"

static const int routes[] = {SRV_EMBED,     SRV_PREDICT,    SRV_RERANK, SRV_TOKENIZE, SRV_DECODE,
                             SRV_EMBED_ALL, SRV_SIMILARITY, SRV_OPENAI, SRV_INFO};
#define N_ROUTES (int)(sizeof routes / sizeof *routes)
#define N_MODELS 3
static qb_model *models[N_MODELS];
static srv_ctx ctx[N_MODELS];
static qb_serve_params params;

/* dir/config.json: tiny-bert-seq's, with this architecture and these
 * labels (a JSON object, or NULL for none). */
static void write_config(const char *dir, const char *arch, const char *labels) {
    char src[4096], path[4096];
    json_error_t je;
    json_t *c = json_load_file(fuzz_source_path(src, sizeof src, TINY "/config.json"), 0, &je);
    if (!c) fuzz_die(je.text, src);
    json_object_set_new(c, "architectures", json_pack("[s]", arch));
    json_object_del(c, "id2label");
    json_object_del(c, "label2id");
    if (labels) json_object_set_new(c, "id2label", json_loads(labels, 0, &je));
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (json_dump_file(c, path, 0)) fuzz_die("cannot write", path);
    json_decref(c);
}

/* tiny-bert-seq with the first row of its classifier: one output. */
static void write_cross_weights(const char *dir) {
    char src[4096], dst[4096];
    qb_safetensors st;
    qb_error err;
    if (qb_safetensors_open(&st, fuzz_source_path(src, sizeof src, TINY "/model.safetensors"), &err))
        fuzz_die(err.msg, NULL);
    qb_st_write_tensor *w = calloc((size_t)st.n, sizeof *w);
    for (int i = 0; i < st.n; i++) {
        const qb_st_tensor *t = &st.tensors[i];
        w[i] = (qb_st_write_tensor){t->name, t->dtype, t->ndim, {0}, t->data};
        memcpy(w[i].shape, t->shape, sizeof t->shape);
        if (!strncmp(t->name, "classifier.", 11)) w[i].shape[0] = 1;
    }
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    if (qb_safetensors_write(dst, w, st.n, NULL, &err)) fuzz_die(err.msg, NULL);
    free(w);
    qb_safetensors_close(&st);
}

static void link_tiny(const char *dir, const char *name) {
    char target[4096], link[4096];
    snprintf(target, sizeof target, "%s/" TINY "/%s", QB_FUZZ_SOURCE_DIR, name);
    snprintf(link, sizeof link, "%s/%s", dir, name);
    if (symlink(target, link)) fuzz_die("cannot link", link);
}

/* A model directory beside tiny-bert-seq: its vocabulary, its config with
 * this head, and prompts (config_sentence_transformers.json). */
static const char *make_model(char *dir, const char *name, const char *arch, const char *labels, bool cross) {
    snprintf(dir, 4096, "%s/%s", fuzz_scratch(), name);
    if (mkdir(dir, 0700)) fuzz_die("cannot make", dir);
    write_config(dir, arch, labels);
    link_tiny(dir, "vocab.txt");
    char path[4200];
    snprintf(path, sizeof path, "%s/config_sentence_transformers.json", dir);
    static const char prompts[] = "{\"prompts\": {\"query\": \"query: \", \"doc\": \"\"}}";
    fuzz_write_path(path, (const uint8_t *)prompts, sizeof prompts - 1);
    if (cross) write_cross_weights(dir);
    else link_tiny(dir, "model.safetensors");
    return dir;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    static char dir[N_MODELS][4096];
    const char *dirs[N_MODELS] = {
        make_model(dir[0], "bare", "BertModel", NULL, false),
        make_model(dir[1], "classifier", "BertForSequenceClassification", "{\"0\": \"a\", \"1\": \"b\", \"2\": \"c\"}",
                   false),
        make_model(dir[2], "cross", "BertForSequenceClassification", "{\"0\": \"score\"}", true),
    };
    params = qb_serve_default_params();
    params.max_client_batch_size = 8;
    for (int i = 0; i < N_MODELS; i++) {
        qb_error err;
        if (qb_model_load(dirs[i], NULL, &models[i], &err) || srv_ctx_init(&ctx[i], models[i], &params, &err))
            fuzz_die(err.msg, dirs[i]);
    }
    return 0;
}

/* Outputs a model could give: finite, signed, some equal (ranking ties). */
static void fill_outputs(srv_job *j) {
    for (int i = 0; i < j->n * j->width; i++) j->out[i] = (float)((i * 7 + j->enc[i / j->width].n) % 11) - 5.0f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const srv_ctx *x = &ctx[data[0] / N_ROUTES % N_MODELS];
    srv_call call = {.route = routes[data[0] % N_ROUTES]};
    srv_reply r = {0};
    qb_error err = {0};
    if (call.route == SRV_INFO) srv_info_reply(x, &r);
    else if (qb_json_parse((const char *)data + 1, size - 1, "request", &call.doc, &err))
        srv_error(&r, 400, "validation", "%s", err.msg);
    else if (srv_call_prepare(x, &call, &r)) {
        if (call.job.out) fill_outputs(&call.job);
        srv_call_reply(x, &call, &r);
    }
    if (r.body) fuzz_touch(r.body, r.len);
    free(r.body);
    srv_call_free(&call);
    return 0;
}
