// ALBERT-style n-gram masking, in plain C++17 (no TensorFlow types).
//
// The TensorFlow kernel in ../kernels is a thin adapter around NgramMasker.
// Randomness is stateless: every row draws from a counter-based generator keyed
// by (seed, row index), so results never depend on threading or call order.
#ifndef PRETRAIN_RECORDS_OPS_CC_CORE_NGRAM_MASKER_H_
#define PRETRAIN_RECORDS_OPS_CC_CORE_NGRAM_MASKER_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "row_random.h"

namespace pretrain_records {

// Id 0 is padding (the records' contract): never masked, not counted in the budget.
constexpr int64_t kPadId = 0;

struct MaskerOptions {
  int max_n = 3;                   // longest n-gram, in words (whole_word) or tokens
  float mask_ratio = 0.15f;        // share of real tokens to predict, in (0, 1]
  int max_predictions = 20;        // cap on predictions per row
  bool favor_shorter_ngram = true; // p(n) ~ 1/n; false: p(n) ~ 1/(max_n + 1 - n)
  bool whole_word = true;          // n counts words (token_boundary) instead of tokens
  std::vector<int64_t> special_ids;  // never masked, never a random replacement
  int64_t mask_id = -1;
  int64_t vocab_size = 0;
  float mask_token_rate = 0.8f;    // replaced by mask_id
  float random_token_rate = 0.1f;  // replaced by a random non-special id; rest unchanged
};

// Returns an empty string when the options are valid, else a one-line message.
std::string ValidateOptions(const MaskerOptions& options);

// A chosen span, in selection order: units [first_unit, first_unit + n_units).
struct Span {
  int first_unit;
  int n_units;
};

// Masks rows. Create one per thread: it owns scratch buffers sized to the
// longest row seen, so masking a row allocates nothing after warm-up.
class NgramMasker {
 public:
  explicit NgramMasker(const MaskerOptions& options);  // options must be valid

  // Masks one row in place.
  //   ids[0, len), boundary[0, len): the row's token ids and word-start flags.
  //   masked_ids: receives the row after 80/10/10 replacement (may alias ids).
  //   positions, labels: receive up to max_predictions entries, positions
  //     ascending, labels = the original ids there. Returns how many.
  //   spans: optional; receives the chosen spans in selection order.
  template <typename Id, typename Flag>
  int MaskRow(const Id* ids, const Flag* boundary, int len, uint64_t seed0,
              uint64_t seed1, uint64_t row, Id* masked_ids, int64_t* positions,
              Id* labels, std::vector<Span>* spans = nullptr);

  // The prediction budget for a row with n_tokens real (non-padding) tokens.
  int Budget(int n_tokens) const;

 private:
  // Inline: called for every token. Most ids lie above the largest special id.
  bool IsSpecial(int64_t id) const {
    if (id > max_special_) return false;
    if (id >= 0 && id < 64) return (small_special_mask_ >> id) & 1;
    return std::binary_search(sorted_specials_.begin(), sorted_specials_.end(), id);
  }
  int64_t RandomNonSpecial(RowRandom& rng) const;
  int DrawLength(RowRandom& rng, int available) const;
  // Splits the row into maskable units; returns the number of real tokens.
  template <typename Id, typename Flag>
  int BuildUnits(const Id* ids, const Flag* boundary, int len);
  int Select(RowRandom& rng, int budget, std::vector<Span>* spans);

  MaskerOptions options_;
  std::vector<int64_t> sorted_specials_;  // ascending, deduplicated
  int64_t small_special_mask_ = 0;        // bit i set: id i (< 64) is special
  int64_t max_special_ = 0;               // the largest special id (padding 0 at least)
  int64_t num_random_ids_ = 0;            // non-special ids in [0, vocab_size)
  // length_cdf_[a - 1][n - 1]: P(length <= n | at most a units fit), in 2^-64 units.
  std::vector<std::vector<uint64_t>> length_cdf_;
  uint64_t mask_threshold_ = 0;
  uint64_t random_threshold_ = 0;

  // Scratch, reused across rows.
  std::vector<int> unit_start_;   // token index where unit u starts; [U] = end sentinel
  std::vector<int> unit_end_;     // one past its last token
  std::vector<uint8_t> covered_;  // unit u is already masked
  std::vector<Span> chosen_;      // spans of the current row, sorted by position after Select
  std::vector<int> order_;        // partial Fisher-Yates permutation of unit indices
  int num_units_ = 0;
};

}  // namespace pretrain_records

#include "ngram_masker_impl.h"

#endif  // PRETRAIN_RECORDS_OPS_CC_CORE_NGRAM_MASKER_H_
