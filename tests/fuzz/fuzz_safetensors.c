/* safetensors header and layout (src/io/safetensors.c): open validates the
 * header, then every tensor is looked up by name and read as floats. */
#include "fuzz_common.h"

#include "io/safetensors.h"

static fuzz_file file;
static float buf[1 << 16];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file_write(&file, data, size);
    qb_safetensors st;
    qb_error err;
    if (qb_safetensors_open(&st, path, &err) != QB_OK) {
        fuzz_touch(err.msg, strlen(err.msg));
        return 0;
    }
    for (int i = 0; i < st.n; i++) {
        const qb_st_tensor *t = &st.tensors[i];
        if (qb_safetensors_find(&st, t->name) != t) abort(); /* names are unique */
        fuzz_touch(t->data, t->nbytes);
        if (qb_dtype_traits_of(t->dtype)->is_float && t->numel <= (int64_t)(sizeof buf / sizeof *buf))
            qb_safetensors_to_f32(t, buf);
    }
    if (st.metadata) fuzz_touch(st.metadata, strlen(st.metadata));
    qb_safetensors_close(&st);
    return 0;
}
