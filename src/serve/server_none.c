/* qbert serve in a build without libmicrohttpd (QB_SERVE=OFF, as the
 * AArch64 cross build is: Debian's arm64 libmicrohttpd pulls in GnuTLS,
 * which cannot be linked statically from unpacked packages).  Every
 * command still builds; serve says why it cannot run. */
#include "core/error.h"
#include "qbert_serve.h"

qb_status qb_serve_start(const qb_model *m, const qb_serve_params *p, qb_server **out, qb_error *err) {
    (void)m, (void)p;
    *out = NULL;
    return qb_fail(err, QB_ERR_ARG, "serve: this qbert was built without libmicrohttpd (QB_SERVE=OFF)");
}

int qb_serve_port(const qb_server *s) {
    (void)s;
    return -1;
}

int qb_serve_drain(qb_server *s, double timeout_s) {
    (void)s, (void)timeout_s;
    return 0;
}

void qb_serve_free(qb_server *s) { (void)s; }
