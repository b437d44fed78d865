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
    joined_.resize(len + 1);
    covered_.resize(len + 1);
    order_.resize(len + 1);
  }
  int n_tokens = 0;
  int units = 0;
  bool prev_maskable = false;  // token i - 1 belongs to a unit
  for (int i = 0; i < len; ++i) {
    const int64_t id = static_cast<int64_t>(ids[i]);
    if (id != kPadId) ++n_tokens;
    if (IsSpecial(id)) {
      prev_maskable = false;
      continue;
    }
    if (!prev_maskable || !options_.whole_word || boundary[i] != 0) {
      if (units > 0) joined_[units - 1] = prev_maskable;
      unit_start_[units] = i;
      unit_end_[units] = i + 1;
      joined_[units] = 0;
      ++units;
    } else {
      unit_end_[units - 1] = i + 1;
    }
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
  for (int u = 0; u < num_units_; ++u) {
    if (!covered_[u]) continue;
    for (int t = unit_start_[u]; t < unit_end_[u]; ++t) {
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
