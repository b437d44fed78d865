// Unit tests for the plain C++ masking core; built and run by `make test`.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "ngram_masker.h"
#include "test_harness.h"

namespace pretrain_records {
namespace {

constexpr int64_t kCls = 2, kSep = 3, kMask = 4, kVocab = 1000;

MaskerOptions Defaults() {
  MaskerOptions o;
  o.max_n = 3;
  o.mask_ratio = 0.2f;
  o.max_predictions = 1000;
  o.special_ids = {1, kCls, kSep, kMask};
  o.mask_id = kMask;
  o.vocab_size = kVocab;
  return o;
}

// [CLS] words... [SEP] padding; each word has `tokens_per_word` tokens.
struct Row {
  std::vector<int64_t> ids;
  std::vector<int32_t> boundary;
};

Row MakeRow(int words, int tokens_per_word, int padding, uint64_t salt) {
  Row r;
  r.ids.push_back(kCls);
  r.boundary.push_back(1);
  RowRandom rng(salt, 17, 0);
  for (int w = 0; w < words; ++w) {
    for (int t = 0; t < tokens_per_word; ++t) {
      r.ids.push_back(10 + static_cast<int64_t>(rng.Below(kVocab - 10)));
      r.boundary.push_back(t == 0);
    }
  }
  r.ids.push_back(kSep);
  r.boundary.push_back(1);
  for (int p = 0; p < padding; ++p) {
    r.ids.push_back(0);
    r.boundary.push_back(0);
  }
  return r;
}

struct Result {
  std::vector<int64_t> masked, positions, labels;
  std::vector<Span> spans;
};

Result Mask(NgramMasker& m, const Row& r, uint64_t s0, uint64_t s1, uint64_t row) {
  Result out;
  const int len = static_cast<int>(r.ids.size());
  out.masked.resize(len);
  out.positions.resize(len);
  out.labels.resize(len);
  const int n = m.MaskRow(r.ids.data(), r.boundary.data(), len, s0, s1, row,
                          out.masked.data(), out.positions.data(), out.labels.data(),
                          &out.spans);
  out.positions.resize(n);
  out.labels.resize(n);
  return out;
}

void TestValidation() {
  MaskerOptions o = Defaults();
  EXPECT(ValidateOptions(o).empty());
  o.max_n = 0;
  EXPECT(ValidateOptions(o).find("max_n") != std::string::npos);
  o = Defaults();
  o.mask_ratio = 0.0f;
  EXPECT(ValidateOptions(o).find("mask_ratio") != std::string::npos);
  o.mask_ratio = 1.5f;
  EXPECT(ValidateOptions(o).find("mask_ratio") != std::string::npos);
  o = Defaults();
  o.mask_id = kVocab;
  EXPECT(ValidateOptions(o).find("mask_id") != std::string::npos);
  o = Defaults();
  o.mask_token_rate = 0.95f;
  EXPECT(!ValidateOptions(o).empty());
}

void TestBudgetIsExactAndSpansAreClean() {
  MaskerOptions o = Defaults();
  o.max_predictions = 20;
  NgramMasker m(o);
  for (uint64_t i = 0; i < 2000; ++i) {
    const int tpw = 1 + static_cast<int>(i % 3);
    Row r = MakeRow(120 / tpw, tpw, 7, i);
    Result out = Mask(m, r, 99, i, 0);
    const int n_tokens = static_cast<int>(r.ids.size()) - 7;
    const int budget = std::min(20, std::max(1, static_cast<int>(std::nearbyint(n_tokens * 0.2))));
    EXPECT(m.Budget(n_tokens) == budget);
    // With plenty of words the budget is filled exactly, whatever the word length.
    EXPECT(static_cast<int>(out.positions.size()) == budget || tpw > 1);
    EXPECT(static_cast<int>(out.positions.size()) <= budget);
    EXPECT(static_cast<int>(out.positions.size()) >= budget - (tpw - 1));
    std::set<int64_t> seen;
    for (size_t k = 0; k < out.positions.size(); ++k) {
      const int64_t p = out.positions[k];
      EXPECT(k == 0 || out.positions[k - 1] < p);
      EXPECT(r.ids[p] != kCls && r.ids[p] != kSep && r.ids[p] != 0);
      EXPECT(out.labels[k] == r.ids[p]);
      seen.insert(p);
    }
    // Whole words: a word is masked entirely or not at all.
    for (size_t t = 1; t + 1 < r.ids.size(); ++t) {
      if (r.boundary[t] == 0 && r.ids[t] != 0) {
        EXPECT(seen.count(static_cast<int64_t>(t)) == seen.count(static_cast<int64_t>(t - 1)));
      }
    }
    // Unmasked tokens are untouched.
    for (size_t t = 0; t < r.ids.size(); ++t) {
      if (!seen.count(static_cast<int64_t>(t))) EXPECT(out.masked[t] == r.ids[t]);
    }
  }
}

void TestPaddingAndSpecialsNeverMaskedEvenAtFullRatio() {
  MaskerOptions o = Defaults();
  o.mask_ratio = 1.0f;
  NgramMasker m(o);
  Row r = MakeRow(30, 1, 10, 5);
  Result out = Mask(m, r, 1, 2, 0);
  EXPECT(out.positions.size() == 30u);  // every word, nothing else
  for (int64_t p : out.positions) EXPECT(p >= 1 && p <= 30);
}

void TestEmptyAndAllSpecialRows() {
  NgramMasker m(Defaults());
  Row empty;
  Result out = Mask(m, empty, 1, 2, 0);
  EXPECT(out.positions.empty());
  Row specials{{kCls, kSep, 0, 0}, {1, 1, 0, 0}};
  out = Mask(m, specials, 1, 2, 0);
  EXPECT(out.positions.empty());
}

// The first span of a row, when its start leaves room for max_n units and the
// budget for max_n tokens, has a length drawn exactly from p(n).
void CheckLengthLaw(bool favor_shorter) {
  MaskerOptions o = Defaults();
  o.max_n = 4;
  o.favor_shorter_ngram = favor_shorter;
  NgramMasker m(o);
  std::vector<double> counts(o.max_n + 1, 0.0);
  double total = 0.0;
  for (uint64_t i = 0; i < 60000; ++i) {
    Row r = MakeRow(60, 1, 0, i % 50);
    Result out = Mask(m, r, 7, i, 0);
    const Span first = out.spans.at(0);
    if (first.first_unit > 60 - o.max_n) continue;
    counts[first.n_units] += 1;
    total += 1;
  }
  double norm = 0.0;
  for (int n = 1; n <= o.max_n; ++n) norm += favor_shorter ? 1.0 / n : 1.0 / (o.max_n + 1 - n);
  for (int n = 1; n <= o.max_n; ++n) {
    const double p = (favor_shorter ? 1.0 / n : 1.0 / (o.max_n + 1 - n)) / norm;
    const double se = std::sqrt(p * (1 - p) / total);
    const double z = (counts[n] / total - p) / se;
    if (std::fabs(z) > 4.0) {
      std::fprintf(stderr, "n=%d share %.4f expected %.4f (z=%.1f)\n", n, counts[n] / total, p, z);
    }
    EXPECT(std::fabs(z) <= 4.0);
  }
}

void TestLengthLaw() {
  CheckLengthLaw(true);
  CheckLengthLaw(false);
}

void TestReplacementShares() {
  MaskerOptions o = Defaults();
  o.max_predictions = 20;
  NgramMasker m(o);
  double masked = 0, random = 0, kept = 0, total = 0;
  for (uint64_t i = 0; i < 20000; ++i) {
    Row r = MakeRow(100, 1, 0, i % 97);
    Result out = Mask(m, r, 3, i, 0);
    for (size_t k = 0; k < out.positions.size(); ++k) {
      const int64_t now = out.masked[out.positions[k]];
      EXPECT(now != kCls && now != kSep && now != 0 && now != 1);
      EXPECT(now >= 0 && now < kVocab);
      total += 1;
      if (now == kMask) {
        masked += 1;
      } else if (now == out.labels[k]) {
        kept += 1;
      } else {
        random += 1;
      }
    }
  }
  // A random id equals the original with probability ~1/995: fold that in.
  const double p_keep = 0.1 + 0.1 / 995.0, p_random = 0.1 - 0.1 / 995.0;
  auto z = [&](double count, double p) { return (count / total - p) / std::sqrt(p * (1 - p) / total); };
  EXPECT(std::fabs(z(masked, 0.8)) < 4.0);
  EXPECT(std::fabs(z(random, p_random)) < 4.0);
  EXPECT(std::fabs(z(kept, p_keep)) < 4.0);
}

void TestRandomIdsCoverEveryNonSpecialId() {
  MaskerOptions o = Defaults();
  o.vocab_size = 12;
  o.special_ids = {1, 2, 3, 11};
  o.mask_id = 3;
  o.mask_token_rate = 0.0f;
  o.random_token_rate = 1.0f;
  o.mask_ratio = 1.0f;
  NgramMasker m(o);
  std::vector<int> counts(12, 0);
  Row r{{2, 5, 6, 7, 8, 9, 10, 3}, {1, 1, 1, 1, 1, 1, 1, 1}};
  for (uint64_t i = 0; i < 5000; ++i) {
    Result out = Mask(m, r, 11, i, 0);
    for (int64_t p : out.positions) counts[out.masked[p]]++;
  }
  for (int id : {0, 1, 2, 3, 11}) EXPECT(counts[id] == 0);
  for (int id : {4, 5, 6, 7, 8, 9, 10}) EXPECT(counts[id] > 4000);  // 30000 / 7 each
}

void TestDeterministicPerSeedAndRow() {
  NgramMasker a(Defaults()), b(Defaults());
  Row r = MakeRow(100, 2, 0, 1);
  Result x = Mask(a, r, 5, 6, 0), y = Mask(b, r, 5, 6, 0);
  EXPECT(x.masked == y.masked && x.positions == y.positions);
  Result z = Mask(a, r, 5, 7, 0);
  EXPECT(z.masked != x.masked);
  // Row i of a batch seeded (s0, s1) equals row 0 seeded (s0, s1 + i).
  Result w = Mask(a, r, 5, 6, 1);
  EXPECT(w.masked == z.masked && w.positions == z.positions);
  Result other = Mask(a, r, 6, 6, 0);
  EXPECT(other.masked != x.masked);
}

void TestTokenModeIgnoresBoundaries() {
  MaskerOptions o = Defaults();
  o.whole_word = false;
  o.max_n = 1;
  NgramMasker m(o);
  Row r = MakeRow(20, 3, 0, 3);
  bool split_word = false;
  for (uint64_t i = 0; i < 200 && !split_word; ++i) {
    Result out = Mask(m, r, 1, i, 0);
    std::set<int64_t> seen(out.positions.begin(), out.positions.end());
    for (int64_t p : out.positions) {
      if (r.boundary[p] == 1 && r.ids[p + 1] != kSep && !seen.count(p + 1)) split_word = true;
    }
  }
  EXPECT(split_word);
}

}  // namespace
}  // namespace pretrain_records

int main() {
  using namespace pretrain_records;
  return RunTests({
      {"Validation", TestValidation},
      {"BudgetIsExactAndSpansAreClean", TestBudgetIsExactAndSpansAreClean},
      {"PaddingAndSpecialsNeverMaskedEvenAtFullRatio", TestPaddingAndSpecialsNeverMaskedEvenAtFullRatio},
      {"EmptyAndAllSpecialRows", TestEmptyAndAllSpecialRows},
      {"LengthLaw", TestLengthLaw},
      {"ReplacementShares", TestReplacementShares},
      {"RandomIdsCoverEveryNonSpecialId", TestRandomIdsCoverEveryNonSpecialId},
      {"DeterministicPerSeedAndRow", TestDeterministicPerSeedAndRow},
      {"TokenModeIgnoresBoundaries", TestTokenModeIgnoresBoundaries},
  });
}
