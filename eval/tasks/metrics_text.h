/* metrics_text.h — code-point strings with Python 3.11 str semantics, for metrics.c (internal to
 * eval/tasks). Results are malloc'd; the int-returning functions give 0 on OOM. */
#ifndef DK_METRICS_TEXT_H
#define DK_METRICS_TEXT_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t *c; /* (n) code points */
    size_t n;
} dk_u32s;

/* str.isspace(), re's \w and \d (Unicode, as Python 3.11) for one code point. */
int dk_uni_is_space(uint32_t c);
int dk_uni_is_word(uint32_t c);
int dk_uni_is_decimal(uint32_t c);

/* UTF-8 -> code points; each invalid byte becomes U+FFFD. Returns 0 on OOM. */
int dk_u32_from_utf8(const char *s, dk_u32s *out);
/* Code points -> NUL-terminated UTF-8; NULL on OOM. */
char *dk_u32_to_utf8(const uint32_t *c, size_t n);
/* Python str.lower(): full mapping (U+0130 -> "i\u0307") and the final-sigma rule. */
int dk_u32_lower(const dk_u32s *in, dk_u32s *out);
/* Python str.split() with no argument: tokens as [start, end) index pairs into s.
 * Returns the count, or -1 on OOM; *tok is malloc'd (2 entries per token). */
long dk_u32_split_ws(const uint32_t *s, size_t n, size_t **tok);
/* Python str.strip() bounds. */
void dk_u32_strip(const uint32_t *s, size_t n, size_t *b, size_t *e);
/* Python `needle in hay` on code points (empty needle is always found). */
int dk_u32_contains(const uint32_t *h, size_t hn, const uint32_t *nd, size_t nn);

#endif
