/* Small vector helpers shared by the sentence-embedding paths, so that the
 * session and the server normalize embeddings to the same bits. */
#ifndef QB_CORE_VEC_H
#define QB_CORE_VEC_H

#include <math.h>

/* torch.nn.functional.normalize: v / max(||v||, 1e-12). */
static inline void qb_vec_normalize(float *v, int n) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)v[i] * v[i];
    float inv = (float)(1.0 / fmax(sqrt(ss), 1e-12));
    for (int i = 0; i < n; i++) v[i] *= inv;
}

#endif
