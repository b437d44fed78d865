// Unit tests for the plain C++ instance stream; built and run by `make test`.
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "instance_stream.h"
#include "test_harness.h"

namespace pretrain_records {
namespace {

constexpr int32_t kCls = 2, kSep = 3, kL = 32;

// Token ids encode where they come from: document * 10000 + position + 10.
int32_t Id(int doc, int pos) { return doc * 10000 + pos + 10; }
int DocOf(int32_t id) { return (id - 10) / 10000; }
int PosOf(int32_t id) { return (id - 10) % 10000; }

struct Row {
  std::vector<int32_t> ids, segments, boundary;
  int label;
};

InstanceOptions Options(SentenceTask task) {
  InstanceOptions o;
  o.max_seq_length = kL;
  o.short_seq_prob = 0.1;
  o.task = task;
  o.cls_id = kCls;
  o.sep_id = kSep;
  o.seed = 7;
  o.shuffle_seed = 8;
  o.shuffle_buffer = 0;
  return o;
}

// Feeds `docs` documents of `sentences` sentences of 3..9 tokens each, for `passes` passes.
std::vector<Row> Run(const InstanceOptions& o, int docs, int sentences, int passes = 1,
                     std::string* error = nullptr) {
  InstanceStream stream(o);
  std::vector<Row> rows;
  auto drain = [&] {
    const int64_t n = stream.Ready();
    std::vector<int32_t> ids(n * kL, -1), seg(n * kL, -1), bnd(n * kL, -1), len(n), lab(n);
    EXPECT(stream.Take(n, ids.data(), seg.data(), bnd.data(), len.data(), lab.data()) == n);
    for (int64_t r = 0; r < n; ++r) {
      for (int t = len[r]; t < kL; ++t) {
        EXPECT(ids[r * kL + t] == 0 && seg[r * kL + t] == 0 && bnd[r * kL + t] == 0);
      }
      rows.push_back({{ids.begin() + r * kL, ids.begin() + r * kL + len[r]},
                      {seg.begin() + r * kL, seg.begin() + r * kL + len[r]},
                      {bnd.begin() + r * kL, bnd.begin() + r * kL + len[r]},
                      lab[r]});
    }
  };
  for (int p = 0; p < passes; ++p) {
    stream.StartPass(p);
    for (int d = 0; d < docs; ++d) {
      std::vector<int32_t> ids, lengths;
      std::vector<int8_t> flags;
      for (int s = 0; s < sentences; ++s) {
        const int n = 3 + (d * 7 + s * 3) % 7;
        for (int t = 0; t < n; ++t) {
          flags.push_back(t % 2 == 0);
          ids.push_back(Id(d, static_cast<int>(ids.size())));
        }
        lengths.push_back(n);
      }
      if (!stream.AddDocument(ids.data(), flags.data(), lengths.data(), sentences)) {
        if (error) *error = stream.error();
        return rows;
      }
      drain();
    }
    if (!stream.EndPass()) {
      if (error) *error = stream.error();
      return rows;
    }
    drain();
  }
  stream.Finish();
  drain();
  return rows;
}

// [CLS] A [SEP] (B [SEP]): specials in place, segments 0 then 1, A and B non-empty.
void CheckShape(const Row& row, bool pair) {
  EXPECT(row.ids.size() <= static_cast<size_t>(kL));
  EXPECT(row.ids.front() == kCls && row.ids.back() == kSep);
  EXPECT(row.boundary[0] == 1 && row.boundary[1] == 1);
  size_t first_sep = 1;
  while (row.ids[first_sep] != kSep) ++first_sep;
  EXPECT(first_sep >= 2);
  for (size_t t = 0; t <= first_sep; ++t) EXPECT(row.segments[t] == 0);
  if (pair) {
    EXPECT(first_sep + 2 < row.ids.size());
    EXPECT(row.boundary[first_sep + 1] == 1);
    for (size_t t = first_sep + 1; t < row.ids.size(); ++t) EXPECT(row.segments[t] == 1);
  } else {
    EXPECT(first_sep + 1 == row.ids.size());
  }
}

void TestSingleSegmentRowsAreRunsOfTheDocument() {
  InstanceOptions o = Options(SentenceTask::kNone);
  const std::vector<Row> rows = Run(o, 5, 12);
  std::map<int, int> next;  // document -> first position not yet seen
  int tokens = 0;
  for (const Row& row : rows) {
    CheckShape(row, false);
    const int d = DocOf(row.ids[1]);
    EXPECT(PosOf(row.ids[1]) >= next[d]);  // rows of a document in order, never overlapping
    for (size_t t = 1; t + 1 < row.ids.size(); ++t) {
      EXPECT(DocOf(row.ids[t]) == d && PosOf(row.ids[t]) == PosOf(row.ids[1]) + int(t) - 1);
      ++tokens;
    }
    next[d] = PosOf(row.ids[row.ids.size() - 2]) + 1;
  }
  int expected = 0;
  for (int d = 0; d < 5; ++d) {
    for (int s = 0; s < 12; ++s) expected += 3 + (d * 7 + s * 3) % 7;
  }
  // Only the tails of chunks longer than a row are dropped (at most 8 tokens of each).
  EXPECT(tokens <= expected && tokens >= expected - 8 * static_cast<int>(rows.size()));
  EXPECT(tokens > expected * 3 / 4);
}

void TestSopSwapsHalfAndKeepsOrderOtherwise() {
  const std::vector<Row> rows = Run(Options(SentenceTask::kSop), 400, 10);
  int swapped = 0;
  for (const Row& row : rows) {
    CheckShape(row, true);
    size_t sep = 1;
    while (row.ids[sep] != kSep) ++sep;
    const int a_last = PosOf(row.ids[sep - 1]);
    const int b_first = PosOf(row.ids[sep + 1]);
    EXPECT(DocOf(row.ids[1]) == DocOf(row.ids[sep + 1]));
    EXPECT(row.label == (a_last > b_first ? 1 : 0));
    swapped += row.label;
  }
  // Binomial(n, 1/2): within 4 standard deviations.
  const double n = rows.size();
  EXPECT(n > 500);
  EXPECT(std::fabs(swapped - n / 2) <= 4 * std::sqrt(n / 4));
}

void TestNspRandomSegmentsComeFromOtherDocuments() {
  const std::vector<Row> rows = Run(Options(SentenceTask::kNsp), 400, 10);
  int random = 0;
  for (const Row& row : rows) {
    CheckShape(row, true);
    size_t sep = 1;
    while (row.ids[sep] != kSep) ++sep;
    const bool same = DocOf(row.ids[1]) == DocOf(row.ids[sep + 1]);
    EXPECT(same == (row.label == 0));
    // B follows A, unless truncation (to a full row) cut between them.
    if (same && row.ids.size() < static_cast<size_t>(kL)) {
      EXPECT(PosOf(row.ids[sep + 1]) == PosOf(row.ids[sep - 1]) + 1);
    }
    random += row.label;
  }
  const double n = rows.size();
  EXPECT(n > 500);
  // Label 1 whenever a chunk has one sentence, else by a fair coin: at least half.
  EXPECT(random >= n / 2 - 4 * std::sqrt(n / 4));
}

void TestNspNeedsTwoDocuments() {
  std::string error;
  Run(Options(SentenceTask::kNsp), 1, 10, 1, &error);
  EXPECT(error.find("needs at least two documents") != std::string::npos);
  error.clear();
  Run(Options(SentenceTask::kNsp), 2, 10, 1, &error);
  EXPECT(error.empty());
}

void TestTruncationKeepsRowsWithinLength() {
  InstanceOptions o = Options(SentenceTask::kSop);
  o.max_seq_length = kL;
  o.short_seq_prob = 0;
  // Documents of one long sentence: every row is a truncated split of it.
  InstanceStream stream(o);
  std::vector<int32_t> ids(100);
  std::vector<int8_t> flags(100, 0);
  for (int t = 0; t < 100; ++t) ids[t] = Id(0, t);
  const int32_t length = 100;
  stream.StartPass(0);
  EXPECT(stream.AddDocument(ids.data(), flags.data(), &length, 1));
  EXPECT(stream.EndPass());
  stream.Finish();
  EXPECT(stream.Ready() == 1);
  std::vector<int32_t> out(kL), seg(kL), bnd(kL);
  int32_t len = 0, label = 0;
  stream.Take(1, out.data(), seg.data(), bnd.data(), &len, &label);
  EXPECT(len == kL);
  size_t sep = 1;
  while (out[sep] != kSep) ++sep;
  // Truncated word tails start what is left of them.
  EXPECT(bnd[1] == 1 && bnd[sep + 1] == 1 && bnd[2] == 0);
}

void TestShuffleIsAPermutationAndSeeded() {
  InstanceOptions plain = Options(SentenceTask::kSop);
  InstanceOptions shuffled = plain;
  shuffled.shuffle_buffer = 50;
  const auto a = Run(plain, 40, 10, 2);
  const auto b = Run(shuffled, 40, 10, 2);
  const auto c = Run(shuffled, 40, 10, 2);
  std::map<std::vector<int32_t>, int> count_a, count_b;
  for (const Row& r : a) ++count_a[r.ids];
  for (const Row& r : b) ++count_b[r.ids];
  EXPECT(a.size() == b.size() && count_a == count_b);
  bool same_order = true, repeatable = b.size() == c.size();
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) same_order &= a[i].ids == b[i].ids;
  for (size_t i = 0; repeatable && i < b.size(); ++i) repeatable &= b[i].ids == c[i].ids;
  EXPECT(!same_order);
  EXPECT(repeatable);
}

void TestPassesAndSeedsDraw() {
  InstanceOptions o = Options(SentenceTask::kSop);
  const auto two = Run(o, 30, 10, 2);
  const auto one = Run(o, 30, 10, 1);
  EXPECT(two.size() > one.size());
  // Pass 1 repeats the documents with other draws.
  bool differs = false;
  for (size_t i = 0; i < one.size() && one.size() + i < two.size(); ++i) {
    differs |= two[one.size() + i].ids != one[i].ids;
  }
  EXPECT(differs);
  o.seed = 8;
  const auto other = Run(o, 30, 10, 1);
  bool seed_differs = other.size() != one.size();
  for (size_t i = 0; !seed_differs && i < one.size(); ++i) seed_differs = other[i].ids != one[i].ids;
  EXPECT(seed_differs);
}

// The same document at (pass 0, index 1) and (pass 1, index 0): independent draws.
void TestPassAndDocumentKeysDoNotOverlap() {
  InstanceOptions o = Options(SentenceTask::kSop);
  o.short_seq_prob = 0.5;  // more draws per document
  InstanceStream stream(o);
  std::vector<int32_t> ids(200), lengths(20, 10);
  std::vector<int8_t> flags(200, 1);
  for (int t = 0; t < 200; ++t) ids[t] = Id(0, t);
  std::vector<std::vector<int32_t>> rows_of[2][2];  // [pass][document]
  for (int p = 0; p < 2; ++p) {
    stream.StartPass(p);
    for (int d = 0; d < 2; ++d) {
      EXPECT(stream.AddDocument(ids.data(), flags.data(), lengths.data(), 20));
      const int64_t n = stream.Ready();
      std::vector<int32_t> out(n * kL), seg(n * kL), bnd(n * kL), len(n), lab(n);
      stream.Take(n, out.data(), seg.data(), bnd.data(), len.data(), lab.data());
      for (int64_t r = 0; r < n; ++r) {
        rows_of[p][d].emplace_back(out.begin() + r * kL, out.begin() + (r + 1) * kL);
      }
    }
    EXPECT(stream.EndPass());
  }
  EXPECT(!rows_of[0][1].empty() && rows_of[0][1] != rows_of[1][0]);
  EXPECT(rows_of[0][0] != rows_of[0][1]);
}

void TestValidation() {
  EXPECT(ValidateInstanceOptions(Options(SentenceTask::kSop)).empty());
  InstanceOptions o = Options(SentenceTask::kSop);
  o.max_seq_length = 4;
  EXPECT(!ValidateInstanceOptions(o).empty());
  o = Options(SentenceTask::kNone);
  o.short_seq_prob = 1.5;
  EXPECT(!ValidateInstanceOptions(o).empty());
}

}  // namespace
}  // namespace pretrain_records

int main() {
  using namespace pretrain_records;
  return RunTests({
      {"SingleSegmentRowsAreRunsOfTheDocument", TestSingleSegmentRowsAreRunsOfTheDocument},
      {"SopSwapsHalfAndKeepsOrderOtherwise", TestSopSwapsHalfAndKeepsOrderOtherwise},
      {"NspRandomSegmentsComeFromOtherDocuments", TestNspRandomSegmentsComeFromOtherDocuments},
      {"NspNeedsTwoDocuments", TestNspNeedsTwoDocuments},
      {"TruncationKeepsRowsWithinLength", TestTruncationKeepsRowsWithinLength},
      {"ShuffleIsAPermutationAndSeeded", TestShuffleIsAPermutationAndSeeded},
      {"PassesAndSeedsDraw", TestPassesAndSeedsDraw},
      {"PassAndDocumentKeysDoNotOverlap", TestPassAndDocumentKeysDoNotOverlap},
      {"Validation", TestValidation},
  });
}
