#include "ngram_masker.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace pretrain_records {
namespace {

constexpr uint64_t kMaxU64 = std::numeric_limits<uint64_t>::max();

// floor(p * 2^64), saturating: a probability as a 64-bit threshold.
uint64_t Threshold(double p) {
  if (p <= 0.0) return 0;
  if (p >= 1.0) return kMaxU64;
  const long double scaled = std::ldexp(static_cast<long double>(p), 64);
  return scaled >= 18446744073709551615.0L ? kMaxU64 : static_cast<uint64_t>(scaled);
}

}  // namespace

std::string ValidateOptions(const MaskerOptions& o) {
  if (o.max_n < 1) return "max_n must be >= 1, got " + std::to_string(o.max_n);
  if (!(o.mask_ratio > 0.0f && o.mask_ratio <= 1.0f)) {
    return "mask_ratio must be in (0, 1], got " + std::to_string(o.mask_ratio);
  }
  if (o.max_predictions < 1) {
    return "max_predictions must be >= 1, got " + std::to_string(o.max_predictions);
  }
  if (o.vocab_size < 1) return "vocab_size must be >= 1, got " + std::to_string(o.vocab_size);
  if (o.mask_id < 0 || o.mask_id >= o.vocab_size) {
    return "mask_id must be in [0, vocab_size), got " + std::to_string(o.mask_id);
  }
  if (!(o.mask_token_rate >= 0.0f && o.random_token_rate >= 0.0f &&
        o.mask_token_rate + o.random_token_rate <= 1.0f + 1e-6f)) {
    return "mask_token_rate and random_token_rate must be >= 0 with a sum <= 1";
  }
  if (o.random_token_rate > 0.0f) {
    int64_t specials_in_vocab = 0;
    std::vector<int64_t> s = o.special_ids;
    s.push_back(kPadId);
    std::sort(s.begin(), s.end());
    s.erase(std::unique(s.begin(), s.end()), s.end());
    for (int64_t id : s) specials_in_vocab += (id >= 0 && id < o.vocab_size);
    if (specials_in_vocab >= o.vocab_size) {
      return "random_token_rate > 0 needs a non-special id in [0, vocab_size)";
    }
  }
  return "";
}

NgramMasker::NgramMasker(const MaskerOptions& options) : options_(options) {
  sorted_specials_ = options_.special_ids;
  sorted_specials_.push_back(kPadId);
  std::sort(sorted_specials_.begin(), sorted_specials_.end());
  sorted_specials_.erase(std::unique(sorted_specials_.begin(), sorted_specials_.end()),
                         sorted_specials_.end());
  num_random_ids_ = options_.vocab_size;
  max_special_ = sorted_specials_.back();
  for (int64_t id : sorted_specials_) {
    if (id >= 0 && id < 64) small_special_mask_ |= int64_t{1} << id;
    if (id >= 0 && id < options_.vocab_size) --num_random_ids_;
  }

  // p(n) ~ 1/n (or its reverse), truncated to the a units that fit at a start.
  const int max_n = options_.max_n;
  length_cdf_.assign(max_n, std::vector<uint64_t>(max_n, kMaxU64));
  for (int a = 1; a <= max_n; ++a) {
    double total = 0.0;
    for (int n = 1; n <= a; ++n) {
      total += options_.favor_shorter_ngram ? 1.0 / n : 1.0 / (max_n + 1 - n);
    }
    double cumulative = 0.0;
    for (int n = 1; n < a; ++n) {
      cumulative += (options_.favor_shorter_ngram ? 1.0 / n : 1.0 / (max_n + 1 - n)) / total;
      length_cdf_[a - 1][n - 1] = Threshold(cumulative);
    }
  }
  mask_threshold_ = Threshold(options_.mask_token_rate);
  random_threshold_ =
      Threshold(static_cast<double>(options_.mask_token_rate) + options_.random_token_rate);
}

int64_t NgramMasker::RandomNonSpecial(RowRandom& rng) const {
  // The r-th non-special id: step over each special at or below it.
  int64_t id = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(num_random_ids_)));
  for (int64_t special : sorted_specials_) {
    if (special < 0) continue;
    if (id < special) break;
    ++id;
  }
  return id;
}

int NgramMasker::Budget(int n_tokens) const {
  // Round half to even, as Python's round() in the BERT/ALBERT scripts.
  const double wanted = std::nearbyint(n_tokens * static_cast<double>(options_.mask_ratio));
  const int at_least_one = std::max(1, static_cast<int>(wanted));
  return std::min(options_.max_predictions, at_least_one);
}

int NgramMasker::DrawLength(RowRandom& rng, int available) const {
  if (available <= 1) return 1;
  const std::vector<uint64_t>& cdf = length_cdf_[available - 1];
  const uint64_t draw = rng.Next();
  for (int n = 1; n < available; ++n) {
    if (draw < cdf[n - 1]) return n;
  }
  return available;
}

int NgramMasker::Select(RowRandom& rng, int budget, std::vector<Span>* spans) {
  const int units = num_units_;
  chosen_.clear();
  std::fill(covered_.begin(), covered_.begin() + units, 0);
  std::iota(order_.begin(), order_.begin() + units, 0);
  int filled = 0;
  // Visit starts in a random order (a lazy Fisher-Yates shuffle): each gets
  // an n-gram length, shortened until it fits the budget and free units.
  for (int k = 0; k < units && filled < budget; ++k) {
    const int j = k + static_cast<int>(rng.Below(static_cast<uint64_t>(units - k)));
    std::swap(order_[k], order_[j]);
    const int start = order_[k];
    if (covered_[start]) continue;
    int available = 1;
    while (available < options_.max_n && start + available < units &&
           unit_end_[start + available - 1] == unit_start_[start + available] &&
           !covered_[start + available]) {
      ++available;
    }
    int n = DrawLength(rng, available);
    const int remaining = budget - filled;
    while (n > 0 && unit_end_[start + n - 1] - unit_start_[start] > remaining) --n;
    if (n == 0) continue;
    for (int u = start; u < start + n; ++u) covered_[u] = 1;
    filled += unit_end_[start + n - 1] - unit_start_[start];
    chosen_.push_back(Span{start, n});
  }
  if (spans != nullptr) spans->assign(chosen_.begin(), chosen_.end());
  // Few spans (at most the budget): insertion sort by position beats scanning every unit.
  for (size_t i = 1; i < chosen_.size(); ++i) {
    const Span span = chosen_[i];
    size_t j = i;
    for (; j > 0 && chosen_[j - 1].first_unit > span.first_unit; --j) chosen_[j] = chosen_[j - 1];
    chosen_[j] = span;
  }
  return filled;
}

}  // namespace pretrain_records
