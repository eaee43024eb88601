/* The server's defaults, shared by the real server and the stub of builds
 * without libmicrohttpd (server_none.c), so --help reads the same in both. */
#include "qbert_serve.h"

qb_serve_params qb_serve_default_params(void) {
    return (qb_serve_params){.host = "127.0.0.1", .port = 8080, .http_threads = 2, .max_batch_tokens = 8192,
                             .max_wait_ms = 5, .max_concurrent_requests = 512, .max_client_batch_size = 32,
                             .payload_limit = 2000000, .timeout_s = 10, .model_id = "qbert"};
}
