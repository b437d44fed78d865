// Template members of NgramMasker; included by ngram_masker.h only.
#ifndef PRETRAIN_RECORDS_OPS_CC_CORE_NGRAM_MASKER_IMPL_H_
#define PRETRAIN_RECORDS_OPS_CC_CORE_NGRAM_MASKER_IMPL_H_

#include <algorithm>

namespace pretrain_records {

template <typename Id, typename Flag>
int NgramMasker::BuildUnits(const Id* ids, const Flag* boundary, int len) {
  if (static_cast<int>(unit_start_.size()) < len + 1) {
    unit_start_.resize(len + 1);
    unit_end_.resize(len + 1);
    covered_.resize(len + 1);
    order_.resize(len + 1);
  }
  // Local pointers: stores through members would make the compiler reload them every token.
  int* const unit_start = unit_start_.data();
  int* const unit_end = unit_end_.data();
  const bool whole_word = options_.whole_word;
  int n_tokens = 0;
  int units = 0;
  bool prev_maskable = false;  // token i - 1 belongs to a unit
  for (int i = 0; i < len; ++i) {
    const int64_t id = static_cast<int64_t>(ids[i]);
    n_tokens += id != kPadId;
    if (IsSpecial(id)) {
      prev_maskable = false;
      continue;
    }
    // Branch-free: word starts are as unpredictable as the text.
    const bool starts_unit = !prev_maskable | !whole_word | (boundary[i] != 0);
    unit_start[units] = i;  // a no-op guess unless this token starts a unit
    units += starts_unit;
    unit_end[units - 1] = i + 1;
    prev_maskable = true;
  }
  num_units_ = units;
  return n_tokens;
}

template <typename Id, typename Flag>
int NgramMasker::MaskRow(const Id* ids, const Flag* boundary, int len,
                         uint64_t seed0, uint64_t seed1, uint64_t row,
                         Id* masked_ids, int64_t* positions, Id* labels,
                         std::vector<Span>* spans) {
  if (masked_ids != ids) std::copy(ids, ids + len, masked_ids);
  if (spans != nullptr) spans->clear();
  const int n_tokens = BuildUnits(ids, boundary, len);
  if (num_units_ == 0) return 0;
  RowRandom rng(seed0, seed1, row);
  if (Select(rng, Budget(n_tokens), spans) == 0) return 0;

  int count = 0;
  for (const Span& span : chosen_) {
    const int end = unit_end_[span.first_unit + span.n_units - 1];
    for (int t = unit_start_[span.first_unit]; t < end; ++t) {
      positions[count] = t;
      labels[count] = ids[t];
      ++count;
      const uint64_t draw = rng.Next();
      if (draw < mask_threshold_) {
        masked_ids[t] = static_cast<Id>(options_.mask_id);
      } else if (draw < random_threshold_) {
        masked_ids[t] = static_cast<Id>(RandomNonSpecial(rng));
      }
    }
  }
  return count;
}

}  // namespace pretrain_records

#endif  // PRETRAIN_RECORDS_OPS_CC_CORE_NGRAM_MASKER_IMPL_H_
