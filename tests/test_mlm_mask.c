/* Masked-LM masking (train/mlm_data.c) against what Hugging Face's
 * collators do, statistically: the share of tokens chosen, the 80/10/10
 * split of what they become, specials never chosen, whole words chosen
 * together, the same key giving the same masks.  Bars are 5 standard
 * deviations of the binomial counts (the draws are hashes, fixed for the
 * seed: the test is deterministic but fails if the proportions drift).
 * With ../shared, the flags of a real WordPiece tokenizer too. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/ops.h"
#include "test_util.h"
#include "train/mlm_data.h"

enum { N = 200, EXAMPLES = 2000, V = 1000, MASK = V };

static uint64_t rng = 99;

static uint32_t next(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}

/* Specials at both ends and every 10th position; words of 1..4 pieces. */
static void example(int32_t *ids, uint8_t *flags) {
    for (int i = 0; i < N; i++) {
        ids[i] = (int32_t)(next() % V);
        flags[i] = i == 0 || i == N - 1 || i % 10 == 0 ? QB_MLM_SPECIAL : 0;
    }
    for (int i = 1; i < N - 1;) {
        int len = 1 + (int)(next() % 4);
        for (int k = 1; k < len && i + k < N - 1; k++)
            if (!(flags[i + k] & QB_MLM_SPECIAL) && !(flags[i + k - 1] & QB_MLM_SPECIAL)) flags[i + k] = QB_MLM_CONTINUES;
        i += len;
    }
}

static bool near(double got, double p, double n, const char *what) {
    double sigma = sqrt(p * (1 - p) / n);
    bool ok = fabs(got - p) <= 5 * sigma;
    printf("  %-36s %.5f (expected %.5f +- %.5f)\n", what, got, p, 5 * sigma);
    return ok;
}

static void test_token_masking(void) {
    qb_mlm_masking p = {.probability = 0.15f, .mask_id = MASK, .vocab_size = V, .seed = 7};
    int32_t ids[N], orig[N], labels[N];
    uint8_t flags[N];
    int scratch[N];
    long eligible = 0, chosen = 0, masked = 0, random = 0, kept = 0, special_hit = 0, bad_label = 0, returned = 0;
    for (int e = 0; e < EXAMPLES; e++) {
        example(orig, flags);
        memcpy(ids, orig, sizeof ids);
        returned += qb_mlm_mask(&p, (uint64_t)e, ids, flags, N, labels, scratch);
        for (int i = 0; i < N; i++) {
            if (flags[i] & QB_MLM_SPECIAL) {
                special_hit += labels[i] != QB_IGNORE_INDEX || ids[i] != orig[i];
                continue;
            }
            eligible++;
            if (labels[i] == QB_IGNORE_INDEX) {
                bad_label += ids[i] != orig[i];
                continue;
            }
            chosen++;
            bad_label += labels[i] != orig[i];
            if (ids[i] == MASK) masked++;
            else if (ids[i] != orig[i]) random++;
            else kept++;
        }
    }
    CHECK(special_hit == 0, "%ld special tokens were chosen or changed", special_hit);
    CHECK(bad_label == 0, "%ld labels are not the original id (or unchosen tokens changed)", bad_label);
    CHECK(returned == chosen, "qb_mlm_mask returned %ld chosen, labels say %ld", returned, chosen);
    CHECK(near((double)chosen / eligible, 0.15, eligible, "chosen / eligible"), "chosen share off");
    CHECK(near((double)masked / chosen, 0.8, chosen, "[MASK] / chosen"), "[MASK] share off");
    /* a random draw equal to the original id counts as kept */
    CHECK(near((double)random / chosen, 0.1 * (1 - 1.0 / V), chosen, "random id / chosen"), "random share off");
    CHECK(near((double)kept / chosen, 0.1 + 0.1 / V, chosen, "unchanged / chosen"), "unchanged share off");

    /* the same key: the same masks; another key or seed: others */
    int32_t a[N], b[N], la[N], lb[N];
    example(orig, flags);
    memcpy(a, orig, sizeof a);
    memcpy(b, orig, sizeof b);
    qb_mlm_mask(&p, 5, a, flags, N, la, scratch);
    qb_mlm_mask(&p, 5, b, flags, N, lb, scratch);
    CHECK(!memcmp(a, b, sizeof a) && !memcmp(la, lb, sizeof la), "the same key masked differently");
    memcpy(b, orig, sizeof b);
    qb_mlm_mask(&p, 6, b, flags, N, lb, scratch);
    CHECK(memcmp(la, lb, sizeof la) != 0, "keys 5 and 6 chose the same tokens");
    qb_mlm_masking q = p;
    q.seed = 8;
    memcpy(b, orig, sizeof b);
    qb_mlm_mask(&q, 5, b, flags, N, lb, scratch);
    CHECK(memcmp(la, lb, sizeof la) != 0, "seeds 7 and 8 chose the same tokens");

    /* p = 0 chooses nothing, p = 1 every token but the specials */
    q = p;
    q.probability = 0;
    memcpy(b, orig, sizeof b);
    CHECK(qb_mlm_mask(&q, 1, b, flags, N, lb, scratch) == 0, "p = 0 chose tokens");
    q.probability = 1;
    int all = 0;
    for (int i = 0; i < N; i++) all += !(flags[i] & QB_MLM_SPECIAL);
    CHECK(qb_mlm_mask(&q, 1, b, flags, N, lb, scratch) == all, "p = 1 did not choose every token");
}

static void test_whole_words(void) {
    qb_mlm_masking p = {.probability = 0.15f, .whole_word = true, .mask_id = MASK, .vocab_size = V, .seed = 11};
    int32_t ids[N], orig[N], labels[N];
    uint8_t flags[N];
    int scratch[N];
    long split = 0, special_hit = 0, over = 0, chosen = 0, first_half = 0, second_half = 0, masked = 0;
    int want = (int)rint(N * 0.15);
    for (int e = 0; e < EXAMPLES; e++) {
        example(orig, flags);
        memcpy(ids, orig, sizeof ids);
        int n = qb_mlm_mask(&p, (uint64_t)e, ids, flags, N, labels, scratch);
        over += n > want;
        chosen += n;
        for (int i = 0; i < N; i++) {
            bool c = labels[i] != QB_IGNORE_INDEX;
            if (flags[i] & QB_MLM_SPECIAL) special_hit += c;
            /* a continuation is chosen exactly when the piece before it is */
            if (flags[i] & QB_MLM_CONTINUES) split += c != (labels[i - 1] != QB_IGNORE_INDEX);
            if (c && !(flags[i] & QB_MLM_CONTINUES)) *(i < N / 2 ? &first_half : &second_half) += 1;
            masked += c && ids[i] == MASK;
        }
    }
    CHECK(split == 0, "%ld word pieces chosen apart from their word", split);
    CHECK(special_hit == 0, "%ld specials chosen", special_hit);
    CHECK(over == 0, "%ld examples chose more than round(n p) = %d tokens", over, want);
    /* words are taken while they fit: all but the last few tokens of round(n p) */
    double share = (double)chosen / ((double)EXAMPLES * want);
    printf("  %-36s %.4f of round(n p)\n", "whole words chosen", share);
    CHECK(share > 0.95, "whole-word masking chose only %.3f of round(n p)", share);
    CHECK(near((double)first_half / (first_half + second_half), 0.5, first_half + second_half,
               "words chosen in the first half"), "words are not chosen uniformly");
    CHECK(near((double)masked / chosen, 0.8, chosen, "whole words: [MASK] / chosen"), "[MASK] share off");
}

/* A real WordPiece vocabulary: "##" pieces continue words, [CLS]/[SEP] and
 * a [MASK] written in the text are special. */
static void test_real_flags(void) {
    char dir[4096];
    qb_test_shared_path(dir, sizeof dir, "models/bert-mini-sst2");
    qb_model *m = NULL;
    qb_error err = {0};
    CHECK(qb_model_load(dir, NULL, &m, &err) == QB_OK, "%s", err.msg);
    if (!m) return;
    static const char *text[] = {"the cinematography is unbelievably mesmerizing [MASK] ok"};
    size_t len[] = {strlen(text[0])};
    int line[] = {1};
    qb_mlm_texts t = {.n = 1, .text = text, .len = len, .line = line, .path = "inline"};
    qb_train_set ts;
    CHECK(qb_train_set_encode_mlm(m, &t, 64, &ts, &err) == QB_OK, "%s", err.msg);
    int n = (int)ts.start[1], continues = 0;
    for (int i = 0; i < n; i++) {
        const char *piece = qb_tokenizer_piece(m->tok, ts.ids[i]);
        bool special = !strcmp(piece, "[CLS]") || !strcmp(piece, "[SEP]") || !strcmp(piece, "[MASK]");
        CHECK(!!(ts.flags[i] & QB_MLM_SPECIAL) == special, "'%s' special flag %d", piece, ts.flags[i]);
        CHECK(!!(ts.flags[i] & QB_MLM_CONTINUES) == !strncmp(piece, "##", 2), "'%s' continues flag %d", piece,
              ts.flags[i]);
        continues += !strncmp(piece, "##", 2);
    }
    CHECK(continues >= 2, "the text should split into ## pieces (%d)", continues);
    qb_train_set_free(&ts);
    qb_model_free(m);
}

int main(void) {
    printf("80/10/10 masking, p = 0.15, %d examples of %d tokens:\n", EXAMPLES, N);
    test_token_masking();
    printf("whole-word masking:\n");
    test_whole_words();
    if (qb_test_failures) return qb_test_done("test_mlm_mask"); /* not hidden by a skip below */
    test_real_flags();
    return qb_test_done("test_mlm_mask");
}
