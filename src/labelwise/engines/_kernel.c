/* The n-gram lookup and TF-IDF scoring of `_ngram_index` / `_tfidf`, text by text in C.

   One `Index` holds a model's vocabulary (the sorted gram hashes of `HashedVocabulary` and a directory over their
   top bits, as `_ngram_index` builds it), a cache of the character gram ids of the words it has seen, and scratch
   space that grows to the longest text. `hits` returns every vocabulary gram occurrence of a batch (for `rows`);
   `scores` goes from texts to raw class scores (TF-IDF row @ coef) without building a sparse matrix.

   One recipe ("splitmix-poly64-v1", `_ngram_index.HASH_RECIPE`) hashes the vocabulary (`vocabulary_hashes`, once
   per model; saved with it) and every text scanned: a span of code points c_0..c_{n-1} (whitespace as a space)
   hashes to mix(sum mix(c_i) * B**i + n * LENGTH) modulo 2**64; a word n-gram chains its tokens' hashes through
   combine(); character grams are salted.

   Every call holds the GIL from start to end and runs no Python code in between (no object is created before the
   output), so the cache and scratch space of an index are never used by two threads at once. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#define BASE 0x9E3779B97F4A7C15ULL
#define LENGTH 0xD6E8FEB86659FD93ULL
#define COMBINE 0xA0761D6478BD642FULL
#define CHAR_SALT 0xE7037ED1A0B428DBULL

/* Longer words are not cached: they are rare (ids, URLs, runs of one letter) and their ids would crowd the pool. */
#define CACHE_MAX_CHARS 48
/* The pool of cached ids empties with the table when it holds this many ids per word the table may hold. */
#define POOL_IDS_PER_WORD 32
/* Scratch space beyond this many code points is given back at the end of the call that needed it. */
#define SCRATCH_KEEP_CHARS (1 << 16)

static inline uint64_t mix(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static inline uint64_t combine(uint64_t left, uint64_t right) { return mix(left * COMBINE + right); }

/* Per ASCII code point: bit 1 a `\w` character (alphanumeric or '_'), bit 2 whitespace; and mix() of each. */
static uint8_t ascii_class[128];
static uint64_t ascii_mix[128];
static uint64_t mix_space;
#define WORD 1
#define SPACE 2

/* The hash of text[start, end) (whitespace as a space), equal to the same characters' span inside a scanned text. */
static uint64_t hash_span(int kind, const void *data, Py_ssize_t start, Py_ssize_t end) {
    uint64_t raw = 0, power = 1;
    for (Py_ssize_t i = start; i < end; i++, power *= BASE) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        raw += (c < 128 ? ascii_mix[c] : Py_UNICODE_ISSPACE(c) ? mix_space : mix(c)) * power;
    }
    return mix(raw + (uint64_t)(end - start) * LENGTH);
}

typedef struct {
    uint64_t key;   /* span hash of the word */
    uint32_t first; /* offset of its ids in the pool */
    uint16_t count;
    uint16_t generation; /* the slot is empty unless this is the cache's generation */
} Slot;

typedef struct {
    PyObject_HEAD
    int ready; /* __init__ succeeded */
    /* The vocabulary: sorted hashes, the feature id of each, a directory over their top bits. */
    uint64_t *hashes;
    int32_t *ids;
    uint32_t *directory;
    Py_ssize_t n_features, n_word;
    int shift, word_ngrams, lo, hi;
    uint64_t bos, eos;
    uint64_t *powers; /* B**k for k < hi */
    /* Character gram ids per word: open addressing (linear probing) over `slots`, ids in `pool`. */
    Slot *slots;
    size_t slot_mask;
    int slot_shift;
    uint16_t generation;
    Py_ssize_t max_words, words;
    int32_t *pool;
    size_t pooled, pool_capacity, pool_limit;
    /* Scratch, grown to the longest text: classes and mixed code points; token hashes; the text's hits. */
    size_t chars_capacity;
    uint8_t *classes;
    uint64_t *mixed; /* one more in front and behind, for a word's padding */
    uint64_t *tokens;
    int32_t *hits;
    size_t hits_len, hits_capacity;
    /* Counting repeats in `scores`: a stamp per feature, then distinct features in order of first occurrence. */
    uint32_t *stamp, *slot_of;
    uint32_t epoch;
    int32_t *distinct;
    uint32_t *counts;
    double *values;
    size_t distinct_capacity;
} IndexObject;

/* Growth helpers ------------------------------------------------------------------------------------------ */

static int grow(void **array, size_t *capacity, size_t needed, size_t item) {
    if (needed <= *capacity) return 0;
    size_t size = *capacity ? *capacity : 256;
    while (size < needed) size *= 2;
    void *grown = PyMem_Realloc(*array, size * item);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *array = grown;
    *capacity = size;
    return 0;
}

/* Arrays that share one capacity: each is resized to `size` items of its own width; on failure the ones already
   resized keep their larger size (and the old capacity, which is still true of every one of them). */
static int resize_all(size_t size, size_t count, void **arrays[], const size_t widths[]) {
    for (size_t i = 0; i < count; i++) {
        void *grown = PyMem_Realloc(*arrays[i], size * widths[i]);
        if (grown == NULL) return PyErr_NoMemory(), -1;
        *arrays[i] = grown;
    }
    return 0;
}

static size_t power_of_two_from(size_t n) {
    size_t size = 256;
    while (size < n) size *= 2;
    return size;
}

static int reserve_chars(IndexObject *self, size_t n) {
    if (n + 2 <= self->chars_capacity) return 0;
    size_t size = power_of_two_from(n + 2);
    void **arrays[] = {(void **)&self->classes, (void **)&self->mixed, (void **)&self->tokens};
    const size_t widths[] = {sizeof(uint8_t), sizeof(uint64_t), sizeof(uint64_t)};
    if (resize_all(size, 3, arrays, widths) < 0) return -1;
    self->chars_capacity = size;
    return 0;
}

static void release_scratch(IndexObject *self) {
    /* Called at the end of a call: a huge text once should not hold its scratch space for the process' life. */
    if (self->chars_capacity > SCRATCH_KEEP_CHARS) {
        PyMem_Free(self->classes);
        PyMem_Free(self->mixed);
        PyMem_Free(self->tokens);
        self->classes = NULL;
        self->mixed = self->tokens = NULL;
        self->chars_capacity = 0;
    }
    if (self->hits_capacity > 8 * SCRATCH_KEEP_CHARS) {
        PyMem_Free(self->hits);
        self->hits = NULL;
        self->hits_capacity = 0;
    }
    if (self->distinct_capacity > 8 * SCRATCH_KEEP_CHARS) {
        PyMem_Free(self->distinct);
        PyMem_Free(self->counts);
        PyMem_Free(self->values);
        self->distinct = NULL;
        self->counts = NULL;
        self->values = NULL;
        self->distinct_capacity = 0;
    }
}

static int reserve_distinct(IndexObject *self, size_t n) {
    if (n <= self->distinct_capacity) return 0;
    size_t size = power_of_two_from(n);
    void **arrays[] = {(void **)&self->distinct, (void **)&self->counts, (void **)&self->values};
    const size_t widths[] = {sizeof(int32_t), sizeof(uint32_t), sizeof(double)};
    if (resize_all(size, 3, arrays, widths) < 0) return -1;
    self->distinct_capacity = size;
    return 0;
}

static inline int push_hit(IndexObject *self, int32_t id) {
    if (self->hits_len == self->hits_capacity &&
        grow((void **)&self->hits, &self->hits_capacity, self->hits_len + 1, sizeof(int32_t)) < 0)
        return -1;
    self->hits[self->hits_len++] = id;
    return 0;
}

/* Vocabulary ---------------------------------------------------------------------------------------------- */

static inline int32_t find(const IndexObject *self, uint64_t hash) {
    uint64_t bucket = hash >> self->shift;
    uint32_t end = self->directory[bucket + 1];
    for (uint32_t at = self->directory[bucket]; at < end; at++) {
        uint64_t held = self->hashes[at];
        if (held == hash) return self->ids[at];
        if (held > hash) break;
    }
    return -1;
}

static inline int probe(IndexObject *self, uint64_t hash) {
    int32_t id = find(self, hash);
    return id < 0 ? 0 : push_hit(self, id);
}

/* Word cache ---------------------------------------------------------------------------------------------- */

static void clear_cache(IndexObject *self) {
    if (++self->generation == 0) { /* wrapped: stale slots could look current, so empty every slot for real */
        memset(self->slots, 0, (self->slot_mask + 1) * sizeof(Slot));
        self->generation = 1;
    }
    self->words = 0;
    self->pooled = 0;
}

static inline Slot *cache_slot(IndexObject *self, uint64_t key) {
    /* The key's slot, or the empty slot where it would go (the table is at most a quarter full). */
    size_t at = (size_t)(key >> self->slot_shift);
    for (;;) {
        Slot *slot = &self->slots[at];
        if (slot->generation != self->generation || slot->key == key) return slot;
        at = (at + 1) & self->slot_mask;
    }
}

/* One text ------------------------------------------------------------------------------------------------ */

/* The character gram ids of the word whose mixed code points are mixed[0..size) (its padding included). */
static int char_hits(IndexObject *self, const uint64_t *padded, Py_ssize_t size) {
    const uint64_t *powers = self->powers;
    if (size < self->lo) { /* shorter than the smallest gram: the padded word itself, once */
        uint64_t raw = 0, power = 1;
        for (Py_ssize_t i = 0; i < size; i++, power *= BASE) raw += padded[i] * power;
        return probe(self, mix(raw + (uint64_t)size * LENGTH) ^ CHAR_SALT);
    }
    for (Py_ssize_t start = 0; start < size; start++) {
        Py_ssize_t longest = size - start < self->hi ? size - start : self->hi;
        uint64_t raw = 0;
        for (Py_ssize_t n = 1; n <= longest; n++) {
            raw += padded[start + n - 1] * powers[n - 1];
            if (n >= self->lo && probe(self, mix(raw + (uint64_t)n * LENGTH) ^ CHAR_SALT) < 0) return -1;
        }
    }
    return 0;
}

/* Every vocabulary gram of `text` (already lowered) into self->hits: word grams first, then character grams. */
static int scan(IndexObject *self, PyObject *text) {
    self->hits_len = 0;
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    if (reserve_chars(self, (size_t)length) < 0) return -1;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    uint8_t *classes = self->classes;
    uint64_t *mixed = self->mixed + 1; /* mixed[-1] and mixed[length]: room for padding */
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 128) {
            classes[i] = ascii_class[c];
            mixed[i] = ascii_mix[c];
        } else if (Py_UNICODE_ISSPACE(c)) {
            classes[i] = SPACE;
            mixed[i] = mix_space;
        } else {
            classes[i] = (Py_UNICODE_ISALNUM(c) || c == '_') ? WORD : 0;
            mixed[i] = mix(c);
        }
    }

    /* Word grams: `\w+` tokens; n-grams of 2+ over the tokens between the sentence markers. */
    uint64_t *tokens = self->tokens;
    Py_ssize_t n_tokens = 0;
    tokens[n_tokens++] = self->bos;
    for (Py_ssize_t i = 0; i < length;) {
        if (!(classes[i] & WORD)) {
            i++;
            continue;
        }
        Py_ssize_t start = i;
        uint64_t raw = 0, power = 1;
        for (; i < length && (classes[i] & WORD); i++, power *= BASE) raw += mixed[i] * power;
        uint64_t hash = mix(raw + (uint64_t)(i - start) * LENGTH);
        tokens[n_tokens++] = hash;
        if (probe(self, hash) < 0) return -1;
    }
    tokens[n_tokens++] = self->eos;
    for (int n = 2; n <= self->word_ngrams; n++) {
        for (Py_ssize_t first = 0; first + n <= n_tokens; first++) {
            uint64_t gram = tokens[first];
            for (int j = 1; j < n; j++) gram = combine(gram, tokens[first + j]);
            if (probe(self, gram) < 0) return -1;
        }
    }

    /* Character grams: each whitespace-separated word, padded by a space each side, through the word cache. */
    for (Py_ssize_t i = 0; i < length;) {
        if (classes[i] & SPACE) {
            i++;
            continue;
        }
        Py_ssize_t start = i;
        uint64_t raw = 0, power = 1;
        for (; i < length && !(classes[i] & SPACE); i++, power *= BASE) raw += mixed[i] * power;
        Py_ssize_t size = i - start;
        uint64_t key = mix(raw + (uint64_t)size * LENGTH);
        Slot *slot = NULL;
        if (size <= CACHE_MAX_CHARS) {
            slot = cache_slot(self, key);
            if (slot->generation == self->generation) {
                size_t needed = self->hits_len + slot->count;
                if (grow((void **)&self->hits, &self->hits_capacity, needed, sizeof(int32_t)) < 0) return -1;
                if (slot->count)
                    memcpy(self->hits + self->hits_len, self->pool + slot->first, slot->count * sizeof(int32_t));
                self->hits_len = needed;
                continue;
            }
        }
        /* Not seen yet: pad it (the characters around it are overwritten, then put back) and find its grams. */
        uint64_t before = mixed[start - 1], after = mixed[i];
        mixed[start - 1] = mix_space;
        mixed[i] = mix_space;
        size_t found_from = self->hits_len;
        int failed = char_hits(self, mixed + start - 1, size + 2);
        mixed[start - 1] = before;
        mixed[i] = after;
        if (failed < 0) return -1;
        if (slot == NULL) continue;
        size_t count = self->hits_len - found_from;
        if (self->words >= self->max_words || self->pooled + count > self->pool_limit) {
            clear_cache(self);
            slot = cache_slot(self, key);
        }
        if (grow((void **)&self->pool, &self->pool_capacity, self->pooled + count, sizeof(int32_t)) < 0) return -1;
        if (count) memcpy(self->pool + self->pooled, self->hits + found_from, count * sizeof(int32_t));
        slot->key = key;
        slot->first = (uint32_t)self->pooled;
        slot->count = (uint16_t)count;
        slot->generation = self->generation;
        self->pooled += count;
        self->words++;
    }
    return 0;
}

/* Scoring ------------------------------------------------------------------------------------------------- */

/* Where the CPU has AVX2 the loop below runs 4 doubles wide (chosen at load time); same results either way. */
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define WIDE_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef WIDE_CLONES
#define WIDE_CLONES
#endif

/* row[c] = sum over k of values[k] * weights[features[k], c]. Each class's sum runs over the features in the same
   order (first occurrence in the text), so a text's scores never depend on the batch; -ffp-contract=off keeps
   them free of fused multiply-adds, so a machine with AVX2 and one without agree too. */
WIDE_CLONES
static void sum_rows(double *row, const float *weights, Py_ssize_t n_classes, const int32_t *features,
                     const double *values, size_t n) {
    /* The weight rows are scattered over the whole matrix: ask for all of them before the first is needed, so
       their cache misses overlap instead of coming one row at a time. */
    for (size_t k = 0; k < n; k++) {
        const char *w = (const char *)(weights + (size_t)features[k] * n_classes);
        for (Py_ssize_t b = 0; b < n_classes * (Py_ssize_t)sizeof(float); b += 64) __builtin_prefetch(w + b);
    }
    for (Py_ssize_t c = 0; c < n_classes; c++) row[c] = 0.0;
    for (size_t k = 0; k < n; k++) {
        const float *w = weights + (size_t)features[k] * n_classes;
        double value = values[k];
        for (Py_ssize_t c = 0; c < n_classes; c++) row[c] += value * (double)w[c];
    }
}

/* Arguments ----------------------------------------------------------------------------------------------- */

/* Whether a buffer's items are `kind` ('f' float, 'i' signed, 'u' unsigned integer) of `size` bytes. */
static int has_format(const Py_buffer *view, char kind, Py_ssize_t size) {
    const char *format = view->format ? view->format : "B";
    if (*format == '@' || *format == '=' || (*format == '<' && !PY_BIG_ENDIAN)) format++;
    if (format[0] == '\0' || format[1] != '\0' || view->itemsize != size) return 0;
    switch (kind) {
        case 'f': return strchr("efd", format[0]) != NULL;
        case 'i': return strchr("bhilq", format[0]) != NULL;
        case 'u': return strchr("BHILQ", format[0]) != NULL;
    }
    return 0;
}

/* A C-contiguous buffer of `ndim` dimensions (shape checked by the caller) whose items are `kind` of `size`. */
static int get_array(PyObject *object, Py_buffer *view, const char *name, char kind, Py_ssize_t size, int ndim,
                     int writable) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(object, view, flags) < 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a C-contiguous%s array", name, writable ? " writable" : "");
        return -1;
    }
    static const char *kinds[] = {"float", "signed integer", "unsigned integer"};
    const char *kind_name = kinds[kind == 'f' ? 0 : kind == 'i' ? 1 : 2];
    if (!has_format(view, kind, size)) {
        PyErr_Format(PyExc_TypeError, "%s: expected %zd-byte %s items, got format '%s'", name, size, kind_name,
                     view->format ? view->format : "B");
    } else if (view->ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "%s: expected %d dimension(s), got %d", name, ndim, view->ndim);
    } else {
        return 0;
    }
    PyBuffer_Release(view);
    return -1;
}

/* The texts as a list or tuple of str (the items are borrowed from the returned reference). */
static PyObject *get_texts(PyObject *texts) {
    PyObject *fast = PySequence_Fast(texts, "texts: expected a sequence of str");
    if (fast == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyUnicode_Check(items[i])) {
            PyErr_Format(PyExc_TypeError, "texts[%zd]: expected str, got %.100s", i, Py_TYPE(items[i])->tp_name);
            Py_DECREF(fast);
            return NULL;
        }
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(items[i]) < 0) {
            Py_DECREF(fast);
            return NULL;
        }
#endif
    }
    return fast;
}

/* Index ------------------------------------------------------------------------------------------------- */

static void free_arrays(IndexObject *self) {
    void **arrays[] = {
        (void **)&self->hashes,  (void **)&self->ids,    (void **)&self->directory, (void **)&self->powers,
        (void **)&self->slots,   (void **)&self->pool,   (void **)&self->classes,   (void **)&self->mixed,
        (void **)&self->tokens,  (void **)&self->hits,   (void **)&self->stamp,     (void **)&self->slot_of,
        (void **)&self->distinct, (void **)&self->counts, (void **)&self->values,
    };
    for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++) {
        PyMem_Free(*arrays[i]);
        *arrays[i] = NULL;
    }
    self->pool_capacity = self->chars_capacity = self->hits_capacity = self->distinct_capacity = 0;
    self->pooled = self->hits_len = 0;
    self->words = 0;
}

static void Index_dealloc(IndexObject *self) {
    free_arrays(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The hash of a sentence marker ("<s>", "</s>"), a token of every text's word grams. */
static int hash_marker(const char *marker, uint64_t *hash) {
    PyObject *text = PyUnicode_FromString(marker);
    if (text == NULL) return -1;
    *hash = hash_span(PyUnicode_KIND(text), PyUnicode_DATA(text), 0, PyUnicode_GET_LENGTH(text));
    Py_DECREF(text);
    return 0;
}

static int bit_length(uint64_t x) {
    int bits = 0;
    while (x) bits++, x >>= 1;
    return bits;
}

static int Index_init(IndexObject *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"hashes", "ids", "n_word", "word_ngrams", "char_ngrams", "cache_words", NULL};
    PyObject *hashes_object, *ids_object;
    Py_ssize_t n_word, cache_words;
    int word_ngrams, lo, hi;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOni(ii)n:Index", keywords, &hashes_object, &ids_object, &n_word,
                                     &word_ngrams, &lo, &hi, &cache_words))
        return -1;
    if (self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Index is already initialized");
        return -1;
    }
    free_arrays(self); /* what an earlier, failed __init__ left */
    if (word_ngrams < 1 || lo < 1 || hi < lo || hi > 1024 || cache_words < 1 || cache_words > (1 << 28)) {
        PyErr_SetString(PyExc_ValueError, "need word_ngrams >= 1, 1 <= char_ngrams[0] <= char_ngrams[1] <= 1024, "
                                          "1 <= cache_words <= 2**28");
        return -1;
    }
    Py_buffer hashes, ids;
    if (get_array(hashes_object, &hashes, "hashes", 'u', 8, 1, 0) < 0) return -1;
    if (get_array(ids_object, &ids, "ids", 'i', 8, 1, 0) < 0) {
        PyBuffer_Release(&hashes);
        return -1;
    }
    Py_ssize_t n = hashes.shape[0];
    int status = -1;
    if (ids.shape[0] != n) {
        PyErr_SetString(PyExc_ValueError, "hashes and ids differ in length");
        goto done;
    }
    if (n >= INT32_MAX || n_word < 0 || n_word > n) {
        PyErr_SetString(PyExc_ValueError, "n_word must lie in [0, len(hashes)], and there are at most 2**31 - 2 grams");
        goto done;
    }
    const uint64_t *hash = hashes.buf;
    const int64_t *id = ids.buf;
    int bits = bit_length((uint64_t)n * 4);
    if (bits < 8) bits = 8;
    size_t buckets = (size_t)1 << bits;
    self->hashes = PyMem_Malloc((n ? n : 1) * sizeof(uint64_t));
    self->ids = PyMem_Malloc((n ? n : 1) * sizeof(int32_t));
    self->directory = PyMem_Calloc(buckets + 1, sizeof(uint32_t));
    self->stamp = PyMem_Calloc(n ? n : 1, sizeof(uint32_t));
    self->slot_of = PyMem_Malloc((n ? n : 1) * sizeof(uint32_t));
    self->powers = PyMem_Malloc(hi * sizeof(uint64_t));
    int slot_bits = bit_length((uint64_t)(4 * cache_words - 1));
    if (slot_bits < 10) slot_bits = 10;
    self->slots = PyMem_Calloc((size_t)1 << slot_bits, sizeof(Slot));
    if (!self->hashes || !self->ids || !self->directory || !self->stamp || !self->slot_of || !self->powers ||
        !self->slots) {
        PyErr_NoMemory();
        goto done;
    }
    uint8_t *seen = PyMem_Calloc(n ? n : 1, 1);
    if (seen == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i && hash[i] < hash[i - 1]) {
            PyErr_SetString(PyExc_ValueError, "hashes are not sorted");
            break;
        }
        if (id[i] < 0 || id[i] >= n || seen[id[i]]) {
            PyErr_SetString(PyExc_ValueError, "ids are not a permutation of range(len(hashes))");
            break;
        }
        seen[id[i]] = 1;
        self->hashes[i] = hash[i];
        self->ids[i] = (int32_t)id[i];
        self->directory[(hash[i] >> (64 - bits)) + 1]++;
    }
    PyMem_Free(seen);
    if (PyErr_Occurred()) goto done;
    for (size_t b = 0; b < buckets; b++) self->directory[b + 1] += self->directory[b];
    self->n_features = n;
    self->n_word = n_word;
    self->shift = 64 - bits;
    self->word_ngrams = word_ngrams;
    self->lo = lo;
    self->hi = hi;
    if (hash_marker("<s>", &self->bos) < 0 || hash_marker("</s>", &self->eos) < 0) goto done;
    self->powers[0] = 1;
    for (int k = 1; k < hi; k++) self->powers[k] = self->powers[k - 1] * BASE;
    self->slot_mask = ((size_t)1 << slot_bits) - 1;
    self->slot_shift = 64 - slot_bits;
    self->generation = 1;
    self->max_words = cache_words;
    self->pool_limit = (size_t)cache_words * POOL_IDS_PER_WORD;
    self->epoch = 0;
    self->ready = 1;
    status = 0;
done:
    PyBuffer_Release(&hashes);
    PyBuffer_Release(&ids);
    return status;
}

static int check_ready(IndexObject *self) {
    if (!self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Index is not initialized");
        return -1;
    }
    return 0;
}

static PyObject *Index_hits(IndexObject *self, PyObject *texts_object) {
    if (check_ready(self) < 0) return NULL;
    PyObject *texts = get_texts(texts_object);
    if (texts == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(texts);
    PyObject **items = PySequence_Fast_ITEMS(texts);
    int64_t *rows = NULL, *ids = NULL;
    size_t length = 0, capacity = 0, ids_capacity = 0;
    PyObject *result = NULL;
    for (Py_ssize_t r = 0; r < n; r++) {
        if (scan(self, items[r]) < 0) goto done;
        size_t needed = length + self->hits_len;
        if (grow((void **)&rows, &capacity, needed, sizeof(int64_t)) < 0 ||
            grow((void **)&ids, &ids_capacity, needed, sizeof(int64_t)) < 0)
            goto done;
        for (size_t k = 0; k < self->hits_len; k++) {
            rows[length + k] = r;
            ids[length + k] = self->hits[k];
        }
        length = needed;
    }
    release_scratch(self);
    Py_ssize_t size = (Py_ssize_t)(length * sizeof(int64_t));
    PyObject *rows_bytes = PyBytes_FromStringAndSize((const char *)rows, size);
    PyObject *ids_bytes = rows_bytes ? PyBytes_FromStringAndSize((const char *)ids, size) : NULL;
    if (ids_bytes != NULL) result = PyTuple_Pack(2, rows_bytes, ids_bytes);
    Py_XDECREF(rows_bytes);
    Py_XDECREF(ids_bytes);
done:
    PyMem_Free(rows);
    PyMem_Free(ids);
    Py_DECREF(texts);
    return result;
}

static PyObject *Index_scores(IndexObject *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"texts", "idf", "coef", "out", NULL};
    PyObject *texts_object, *idf_object, *coef_object, *out_object;
    if (check_ready(self) < 0) return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO:scores", keywords, &texts_object, &idf_object, &coef_object,
                                     &out_object))
        return NULL;
    PyObject *texts = get_texts(texts_object);
    if (texts == NULL) return NULL;
    Py_buffer idf = {0}, coef = {0}, out = {0};
    PyObject *result = NULL;
    if (get_array(idf_object, &idf, "idf", 'f', 8, 1, 0) < 0) goto done;
    if (get_array(coef_object, &coef, "coef", 'f', 4, 2, 0) < 0) goto done;
    if (get_array(out_object, &out, "out", 'f', 8, 2, 1) < 0) goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(texts), n_features = self->n_features, n_classes = coef.shape[1];
    if (idf.shape[0] != n_features || coef.shape[0] != n_features) {
        PyErr_Format(PyExc_ValueError, "idf and coef need %zd rows (the vocabulary size), got %zd and %zd", n_features,
                     idf.shape[0], coef.shape[0]);
        goto done;
    }
    if (out.shape[0] != n || out.shape[1] != n_classes) {
        PyErr_Format(PyExc_ValueError, "out: expected shape (%zd, %zd), got (%zd, %zd)", n, n_classes, out.shape[0],
                     out.shape[1]);
        goto done;
    }
    PyObject **items = PySequence_Fast_ITEMS(texts);
    const double *idf_of = idf.buf;
    const float *weights = coef.buf;
    for (Py_ssize_t r = 0; r < n; r++) {
        if (scan(self, items[r]) < 0) goto done;
        /* Count repeats: the first occurrence of a feature in this text gets a place in `distinct`. */
        if (++self->epoch == 0) {
            memset(self->stamp, 0, n_features * sizeof(uint32_t));
            self->epoch = 1;
        }
        if (reserve_distinct(self, self->hits_len) < 0) goto done;
        uint32_t epoch = self->epoch, *stamp = self->stamp, *slot_of = self->slot_of, *counts = self->counts;
        int32_t *distinct = self->distinct;
        size_t n_distinct = 0;
        for (size_t k = 0; k < self->hits_len; k++) {
            int32_t f = self->hits[k];
            if (stamp[f] != epoch) {
                stamp[f] = epoch;
                slot_of[f] = (uint32_t)n_distinct;
                distinct[n_distinct] = f;
                counts[n_distinct++] = 1;
            } else {
                counts[slot_of[f]]++;
            }
        }
        /* Sublinear tf times idf; each block (word grams, character grams) normalized on its own. */
        double *values = self->values, word_norm = 0.0, char_norm = 0.0;
        for (size_t k = 0; k < n_distinct; k++) {
            double value = idf_of[distinct[k]];
            if (counts[k] > 1) value *= 1.0 + log((double)counts[k]);
            values[k] = value;
            if (distinct[k] < self->n_word)
                word_norm += value * value;
            else
                char_norm += value * value;
        }
        word_norm = sqrt(word_norm);
        char_norm = sqrt(char_norm);
        for (size_t k = 0; k < n_distinct; k++) values[k] /= distinct[k] < self->n_word ? word_norm : char_norm;
        sum_rows((double *)out.buf + r * n_classes, weights, n_classes, distinct, values, n_distinct);
    }
    release_scratch(self);
    result = Py_NewRef(Py_None);
done:
    if (idf.obj) PyBuffer_Release(&idf);
    if (coef.obj) PyBuffer_Release(&coef);
    if (out.obj) PyBuffer_Release(&out);
    Py_DECREF(texts);
    return result;
}

static PyObject *Index_clear_cache(IndexObject *self, PyObject *Py_UNUSED(ignored)) {
    if (check_ready(self) < 0) return NULL;
    clear_cache(self);
    Py_RETURN_NONE;
}

static PyObject *Index_cached_words(IndexObject *self, void *Py_UNUSED(closure)) {
    return PyLong_FromSsize_t(self->words);
}

static PyMethodDef Index_methods[] = {
    {"hits", (PyCFunction)Index_hits, METH_O,
     "hits(texts) -> (rows, ids): int64 bytes, the text and feature id of every vocabulary gram occurrence."},
    {"scores", (PyCFunction)(void (*)(void))Index_scores, METH_VARARGS | METH_KEYWORDS,
     "scores(texts, idf, coef, out): out[i] = the TF-IDF row of texts[i] @ coef."},
    {"clear_cache", (PyCFunction)Index_clear_cache, METH_NOARGS, "Forget every cached word."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Index_getset[] = {
    {"cached_words", (getter)Index_cached_words, NULL, "Words whose character gram ids are cached.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject IndexType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "labelwise.engines._kernel.Index",
    .tp_basicsize = sizeof(IndexObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A model's n-gram vocabulary, with a per-word cache of character gram ids.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Index_init,
    .tp_dealloc = (destructor)Index_dealloc,
    .tp_methods = Index_methods,
    .tp_getset = Index_getset,
};

/* Vocabulary hashes ------------------------------------------------------------------------------------- */

/* A word gram ("what", "<s> what is"): its space-separated tokens' hashes chained by combine(), as `scan` chains
   the tokens of a text. */
static uint64_t hash_word_gram(PyObject *gram) {
    int kind = PyUnicode_KIND(gram);
    const void *data = PyUnicode_DATA(gram);
    Py_ssize_t length = PyUnicode_GET_LENGTH(gram);
    uint64_t hash = 0;
    int tokens = 0;
    for (Py_ssize_t i = 0; i < length;) {
        if (Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i))) {
            i++;
            continue;
        }
        Py_ssize_t start = i;
        while (i < length && !Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i))) i++;
        uint64_t token = hash_span(kind, data, start, i);
        hash = tokens++ ? combine(hash, token) : token;
    }
    return tokens ? hash : hash_span(kind, data, 0, 0);
}

static PyObject *vocabulary_hashes(PyObject *module, PyObject *args) {
    PyObject *words_object, *chars_object;
    if (!PyArg_ParseTuple(args, "OO:vocabulary_hashes", &words_object, &chars_object)) return NULL;
    PyObject *words = get_texts(words_object);
    if (words == NULL) return NULL;
    PyObject *chars = get_texts(chars_object);
    if (chars == NULL) {
        Py_DECREF(words);
        return NULL;
    }
    Py_ssize_t n_words = PySequence_Fast_GET_SIZE(words), n_chars = PySequence_Fast_GET_SIZE(chars);
    PyObject *out = PyBytes_FromStringAndSize(NULL, (n_words + n_chars) * (Py_ssize_t)sizeof(uint64_t));
    if (out != NULL) {
        uint64_t *hashes = (uint64_t *)PyBytes_AS_STRING(out);
        PyObject **items = PySequence_Fast_ITEMS(words);
        for (Py_ssize_t i = 0; i < n_words; i++) hashes[i] = hash_word_gram(items[i]);
        items = PySequence_Fast_ITEMS(chars);
        for (Py_ssize_t i = 0; i < n_chars; i++) {
            PyObject *gram = items[i];
            hashes[n_words + i] =
                hash_span(PyUnicode_KIND(gram), PyUnicode_DATA(gram), 0, PyUnicode_GET_LENGTH(gram)) ^ CHAR_SALT;
        }
    }
    Py_DECREF(words);
    Py_DECREF(chars);
    return out;
}

static PyMethodDef kernel_functions[] = {
    {"vocabulary_hashes", vocabulary_hashes, METH_VARARGS,
     "vocabulary_hashes(word_grams, char_grams) -> bytes: the uint64 hash of each gram, word grams first; character "
     "grams salted, as a text's grams are hashed when it is scanned."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef kernel_module = {
    PyModuleDef_HEAD_INIT, .m_name = "labelwise.engines._kernel",
    .m_doc = "N-gram lookup and TF-IDF scoring for the linear engine (see _kernel.c).", .m_size = -1,
    .m_methods = kernel_functions,
};

PyMODINIT_FUNC PyInit__kernel(void) {
    for (int c = 0; c < 128; c++) {
        int space = Py_UNICODE_ISSPACE(c);
        ascii_class[c] = space ? SPACE : (Py_UNICODE_ISALNUM(c) || c == '_') ? WORD : 0;
        ascii_mix[c] = mix(space ? ' ' : (uint64_t)c);
    }
    mix_space = mix(' ');
    if (PyType_Ready(&IndexType) < 0) return NULL;
    PyObject *module = PyModule_Create(&kernel_module);
    if (module == NULL) return NULL;
    if (PyModule_AddObjectRef(module, "Index", (PyObject *)&IndexType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
