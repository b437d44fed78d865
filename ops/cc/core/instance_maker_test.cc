// Unit tests for the plain C++ instance maker; built and run by `make core-test`.
#include "instance_maker.h"

#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "test_harness.h"

namespace pretrain_records::instances {
namespace {

constexpr int32_t kCls = 2, kSep = 3;

// Word pieces of the handmade chunks; "▁" starts a word, as in SentencePiece.
const std::vector<std::string> kPieces = {
    "<pad>", "<unk>", "[CLS]", "[SEP]", "▁the", "▁cat", "▁sat", "▁on", "▁mat", "s",
    "▁dog",  "▁ran",  "▁far",  "▁a",    "way",  "▁un",  "like", "ly",  "▁it",  "▁was",
};

int32_t PieceId(const std::string& piece) {
  for (size_t i = 0; i < kPieces.size(); ++i) {
    if (kPieces[i] == piece) return static_cast<int32_t>(i);
  }
  std::fprintf(stderr, "unknown piece %s\n", piece.c_str());
  return 1;
}

bool StartsWord(int32_t id) { return kPieces[id].rfind("\u2581", 0) == 0; }

// A chunk that owns its arrays. Documents are lists of sentences; a sentence is its pieces
// separated by spaces ("" is an empty sentence).
struct OwnedChunk {
  std::vector<int32_t> ids;
  std::vector<int8_t> word_starts;
  std::vector<int32_t> sentence_lengths, document_sentences;
  Chunk view() const { return {ids, word_starts, sentence_lengths, document_sentences}; }
};

OwnedChunk FromPieces(const std::vector<std::vector<std::string>>& documents) {
  OwnedChunk c;
  for (const auto& document : documents) {
    for (const std::string& sentence : document) {
      std::istringstream pieces(sentence);
      std::string piece;
      int32_t n = 0;
      while (pieces >> piece) {
        c.ids.push_back(PieceId(piece));
        c.word_starts.push_back(StartsWord(c.ids.back()));
        ++n;
      }
      c.sentence_lengths.push_back(n);
    }
    c.document_sentences.push_back(static_cast<int32_t>(document.size()));
  }
  return c;
}

// Synthetic documents whose ids say where they come from: document * 10000 + position + 10
// (position within the document); every other token starts a word.
int32_t Id(int doc, int pos) { return doc * 10000 + pos + 10; }
int DocOf(int32_t id) { return (id - 10) / 10000; }
int PosOf(int32_t id) { return (id - 10) % 10000; }

OwnedChunk Synthetic(int docs, int sentences, int min_len = 3, int spread = 7) {
  OwnedChunk c;
  for (int d = 0; d < docs; ++d) {
    int pos = 0;
    for (int s = 0; s < sentences; ++s) {
      const int n = min_len + (d * 7 + s * 3) % spread;
      for (int t = 0; t < n; ++t, ++pos) {
        c.ids.push_back(Id(d, pos));
        c.word_starts.push_back(pos % 2 == 0);
      }
      c.sentence_lengths.push_back(n);
    }
    c.document_sentences.push_back(sentences);
  }
  return c;
}

InstanceOptions Options(SentenceTask task, int64_t length = 32, double short_seq_prob = 0.1) {
  InstanceOptions o;
  o.max_seq_length = length;
  o.short_seq_prob = short_seq_prob;
  o.task = task;
  o.cls_id = kCls;
  o.sep_id = kSep;
  return o;
}

struct Row {
  std::vector<int32_t> ids, segments, boundary;  // the first `length` entries
  int label = 0;
  int own = 0;  // tokens from the row's own document
  int document = 0;  // the chunk's document of A
};

std::vector<Row> Make(const OwnedChunk& chunk, const InstanceOptions& o, uint64_t seed0,
                      uint64_t seed1, std::string* error = nullptr) {
  InstanceRows out;
  std::string problem;
  const bool ok = MakeInstances(chunk.view(), o, seed0, seed1, &out, &problem);
  if (error != nullptr) *error = problem;
  if (!ok) return {};
  EXPECT(out.max_seq_length == o.max_seq_length);
  const int64_t L = o.max_seq_length;
  EXPECT(static_cast<int64_t>(out.input_ids.size()) == out.rows() * L);
  EXPECT(out.own_tokens.size() == out.lengths.size());
  EXPECT(out.documents.size() == out.lengths.size());
  std::vector<Row> rows;
  for (int64_t r = 0; r < out.rows(); ++r) {
    const int64_t n = out.lengths[r];
    EXPECT(n >= 1 && n <= L);
    for (int64_t t = n; t < L; ++t) {  // padding is all zeros
      EXPECT(out.input_ids[r * L + t] == 0 && out.segment_ids[r * L + t] == 0 &&
             out.token_boundary[r * L + t] == 0);
    }
    const auto at = [&](const std::vector<int32_t>& v) {
      return std::vector<int32_t>(v.begin() + r * L, v.begin() + r * L + n);
    };
    rows.push_back({at(out.input_ids), at(out.segment_ids), at(out.token_boundary), out.labels[r],
                    out.own_tokens[r], out.documents[r]});
  }
  return rows;
}

std::string Render(const std::vector<int32_t>& ids) {
  std::string text;
  for (int32_t id : ids) text += (text.empty() ? "" : " ") + kPieces[id];
  return text;
}

size_t FirstSep(const Row& row) {
  size_t sep = 1;
  while (sep < row.ids.size() && row.ids[sep] != kSep) ++sep;
  return sep;
}

// [CLS] A [SEP] (B [SEP]): specials in place, segments 0 then 1, A and B non-empty, and the
// first token of each segment starts a word.
void CheckLayout(const Row& row, bool pair, int64_t length) {
  EXPECT(static_cast<int64_t>(row.ids.size()) <= length);
  EXPECT(row.ids.front() == kCls && row.ids.back() == kSep);
  const size_t sep = FirstSep(row);
  EXPECT(sep >= 2 && sep < row.ids.size());
  for (size_t t = 0; t <= sep && t < row.ids.size(); ++t) EXPECT(row.segments[t] == 0);
  EXPECT(row.boundary[0] == 1 && row.boundary[1] == 1 && row.boundary[sep] == 1);
  if (pair) {
    EXPECT(sep + 2 < row.ids.size());
    EXPECT(sep + 1 < row.ids.size() && row.boundary[sep + 1] == 1);
    for (size_t t = sep + 1; t < row.ids.size(); ++t) EXPECT(row.segments[t] == 1);
    for (size_t t = sep + 1; t + 1 < row.ids.size(); ++t) EXPECT(row.ids[t] != kSep);
  } else {
    EXPECT(sep + 1 == row.ids.size());
  }
}

// Tokens [first, last) of a synthetic row: one run of consecutive positions of one document.
bool IsRun(const Row& row, size_t first, size_t last) {
  for (size_t t = first + 1; t < last; ++t) {
    if (DocOf(row.ids[t]) != DocOf(row.ids[first]) ||
        PosOf(row.ids[t]) != PosOf(row.ids[t - 1]) + 1) {
      return false;
    }
  }
  return last > first;
}

// Binomial(n, 1/2): `ones` within 5 standard deviations of n / 2 (a false alarm ~ 6e-7).
bool Balanced(int ones, int n) { return std::fabs(ones - n / 2.0) <= 5 * std::sqrt(n / 4.0); }

void TestNoneRowsAreExact() {
  const OwnedChunk chunk = FromPieces({
      {"▁the ▁cat ▁sat", "▁on ▁the ▁mat"},
      {"▁un like ly ▁dog s ▁ran ▁far", "▁it ▁ran"},
  });
  // L = 8 leaves 6 tokens: sentences gather up to 6, a longer run loses its tail.
  for (uint64_t seed = 0; seed < 4; ++seed) {
    const std::vector<Row> rows = Make(chunk, Options(SentenceTask::kNone, 8, 0), seed, 1);
    EXPECT(rows.size() == 3);
    if (rows.size() != 3) continue;
    EXPECT(Render(rows[0].ids) == "[CLS] ▁the ▁cat ▁sat ▁on ▁the ▁mat [SEP]");
    EXPECT(Render(rows[1].ids) == "[CLS] ▁un like ly ▁dog s ▁ran [SEP]");
    EXPECT(Render(rows[2].ids) == "[CLS] ▁it ▁ran [SEP]");
    EXPECT((rows[1].boundary == std::vector<int32_t>{1, 1, 0, 0, 1, 0, 1, 1}));
    EXPECT((rows[2].segments == std::vector<int32_t>{0, 0, 0, 0}));
    for (const Row& row : rows) EXPECT(row.label == 0);
  }
}

void TestSopTwoSentencesAreExact() {
  const OwnedChunk chunk = FromPieces({{"▁the ▁cat ▁sat", "▁on ▁the ▁mat"}});
  std::set<int> labels;
  for (uint64_t seed = 0; seed < 32; ++seed) {
    const std::vector<Row> rows = Make(chunk, Options(SentenceTask::kSop, 16, 0), seed, 0);
    EXPECT(rows.size() == 1);
    if (rows.empty()) continue;
    const Row& row = rows[0];
    labels.insert(row.label);
    EXPECT(Render(row.ids) == (row.label == 0 ? "[CLS] ▁the ▁cat ▁sat [SEP] ▁on ▁the ▁mat [SEP]"
                                              : "[CLS] ▁on ▁the ▁mat [SEP] ▁the ▁cat ▁sat [SEP]"));
    EXPECT((row.segments == std::vector<int32_t>{0, 0, 0, 0, 0, 1, 1, 1, 1}));
    EXPECT((row.boundary == std::vector<int32_t>{1, 1, 1, 1, 1, 1, 1, 1, 1}));
  }
  EXPECT(labels.size() == 2);
}

void TestNspRowsAreExact() {
  const OwnedChunk chunk = FromPieces({
      {"▁the ▁cat ▁sat", "▁on ▁the ▁mat"},
      {"▁a ▁dog ▁ran", "▁far ▁a way"},
  });
  // With room for both documents, document 0 makes A = its first sentence and B = its second
  // (label 0), or B = the other document from a random sentence on (label 1); then its
  // second sentence, put back, has no sentence to pair with: B is random.
  const std::set<std::string> first = {
      "[CLS] ▁the ▁cat ▁sat [SEP] ▁on ▁the ▁mat [SEP] 0",
      "[CLS] ▁the ▁cat ▁sat [SEP] ▁a ▁dog ▁ran ▁far ▁a way [SEP] 1",
      "[CLS] ▁the ▁cat ▁sat [SEP] ▁far ▁a way [SEP] 1",
  };
  const std::set<std::string> put_back = {
      "[CLS] ▁on ▁the ▁mat [SEP] ▁a ▁dog ▁ran ▁far ▁a way [SEP] 1",
      "[CLS] ▁on ▁the ▁mat [SEP] ▁far ▁a way [SEP] 1",
  };
  std::set<std::string> seen;
  for (uint64_t seed = 0; seed < 64; ++seed) {
    const std::vector<Row> rows = Make(chunk, Options(SentenceTask::kNsp, 16, 0), seed, 0);
    std::vector<std::string> doc0;
    for (const Row& row : rows) {
      if (row.ids[1] == PieceId("▁the") || row.ids[1] == PieceId("▁on")) {
        doc0.push_back(Render(row.ids) + " " + std::to_string(row.label));
      }
    }
    EXPECT(doc0.size() == 1 || doc0.size() == 2);
    if (doc0.empty()) continue;
    EXPECT(first.count(doc0[0]) == 1);
    EXPECT((doc0.size() == 2) == (doc0[0].back() == '1'));
    if (doc0.size() == 2) EXPECT(put_back.count(doc0[1]) == 1);
    seen.insert(doc0.begin(), doc0.end());
  }
  EXPECT(seen.size() == first.size() + put_back.size());  // every case occurs
}

// The draws of this chunk and seed, pinned: a change here changes every build's records.
void TestPinnedRows() {
  const OwnedChunk chunk = FromPieces({
      {"▁the ▁cat s ▁sat", "▁on ▁the ▁mat", "▁it ▁was ▁un like ly"},
      {"▁a ▁dog ▁ran ▁far ▁a way", "▁the ▁dog s ▁sat"},
  });
  const std::vector<Row> rows = Make(chunk, Options(SentenceTask::kNsp, 16, 0.5), 10, 1);
  std::vector<std::string> got;
  for (const Row& row : rows) got.push_back(Render(row.ids) + " " + std::to_string(row.label));
  const std::vector<std::string> expected = {
      "[CLS] ▁the ▁cat s ▁sat [SEP] ▁the ▁dog s ▁sat [SEP] 1",
      "[CLS] ▁on ▁the ▁mat [SEP] ▁it ▁was ▁un like ly [SEP] 0",
      "[CLS] ▁a ▁dog ▁ran ▁far ▁a way [SEP] ▁the ▁dog s ▁sat [SEP] 0",
  };
  EXPECT(got == expected);
  if (got != expected) {
    for (const std::string& line : got) std::fprintf(stderr, "  got: %s\n", line.c_str());
  }
}

void TestSameSeedSameRows() {
  const OwnedChunk chunk = Synthetic(50, 8);
  for (SentenceTask task : {SentenceTask::kNsp, SentenceTask::kSop, SentenceTask::kNone}) {
    InstanceRows a, b;
    std::string error;
    EXPECT(MakeInstances(chunk.view(), Options(task), 7, 3, &a, &error));
    EXPECT(MakeInstances(chunk.view(), Options(task), 7, 3, &b, &error));
    EXPECT(a.rows() > 50);
    EXPECT(a.input_ids == b.input_ids && a.segment_ids == b.segment_ids &&
           a.token_boundary == b.token_boundary && a.lengths == b.lengths && a.labels == b.labels);
  }
}

// A document's rows depend on its stream, not on the documents after it (SOP and none
// never look at other documents).
void TestDocumentRowsDoNotDependOnLaterDocuments() {
  for (SentenceTask task : {SentenceTask::kSop, SentenceTask::kNone}) {
    const std::vector<Row> all = Make(Synthetic(20, 8), Options(task, 32, 0.3), 5, 6);
    const std::vector<Row> head = Make(Synthetic(12, 8), Options(task, 32, 0.3), 5, 6);
    EXPECT(head.size() < all.size());
    for (size_t r = 0; r < head.size() && r < all.size(); ++r) EXPECT(head[r].ids == all[r].ids);
  }
}

void TestOtherSeedsOtherRows() {
  const OwnedChunk chunk = Synthetic(30, 8);
  for (SentenceTask task : {SentenceTask::kNsp, SentenceTask::kSop, SentenceTask::kNone}) {
    const InstanceOptions o = Options(task, 32, 0.5);
    const std::vector<Row> base = Make(chunk, o, 7, 0);
    for (auto [seed0, seed1] : {std::pair<uint64_t, uint64_t>{8, 0}, {7, 1}, {0, 7}}) {
      const std::vector<Row> other = Make(chunk, o, seed0, seed1);
      bool differs = other.size() != base.size();
      for (size_t r = 0; !differs && r < base.size(); ++r) differs = other[r].ids != base[r].ids;
      EXPECT(differs);
    }
  }
}

// (seed1, d) pairs never share a stream: not (b, d) and (b + 1, d - 1) as plain addition would.
void TestSeedAndDocumentKeysDoNotOverlap() {
  std::set<uint64_t> firsts;
  for (uint64_t seed1 = 0; seed1 < 64; ++seed1) {
    for (int64_t d = 0; d < 64; ++d) firsts.insert(DocumentRandom(7, seed1, d).Next());
  }
  EXPECT(firsts.size() == 64 * 64);
  // What the check guards against: RowRandom's own (seed1 + row) keying would collide.
  EXPECT(RowRandom(7, 0, 1).Next() == RowRandom(7, 1, 0).Next());
  // Identical documents (ids differ in their document part only): document 1 of seed (7, 0)
  // and document 0 of (7, 1) draw apart.
  OwnedChunk chunk;
  for (int d = 0; d < 2; ++d) {
    for (int t = 0; t < 200; ++t) {
      chunk.ids.push_back(Id(d, t));
      chunk.word_starts.push_back(1);
    }
    chunk.sentence_lengths.insert(chunk.sentence_lengths.end(), 20, 10);
    chunk.document_sentences.push_back(20);
  }
  // A document's rows with positions for ids: what identical documents would give.
  auto positions_of = [](const std::vector<Row>& rows, int doc) {
    std::vector<std::vector<int32_t>> out;
    for (const Row& row : rows) {
      if (DocOf(row.ids[1]) != doc) continue;
      out.emplace_back();
      for (int32_t id : row.ids) out.back().push_back(id < 10 ? -id : PosOf(id));
    }
    return out;
  };
  const InstanceOptions o = Options(SentenceTask::kSop, 32, 0.5);
  const auto doc1_of_zero = positions_of(Make(chunk, o, 7, 0), 1);
  const auto doc0_of_one = positions_of(Make(chunk, o, 7, 1), 0);
  EXPECT(!doc1_of_zero.empty() && !doc0_of_one.empty());
  EXPECT(doc1_of_zero != doc0_of_one);
}

void TestNspRandomSegmentsComeFromOtherDocuments() {
  const OwnedChunk chunk = Synthetic(300, 10);
  int random = 0, rows_seen = 0;
  for (uint64_t seed1 = 0; seed1 < 3; ++seed1) {
    for (const Row& row : Make(chunk, Options(SentenceTask::kNsp), 11, seed1)) {
      CheckLayout(row, true, 32);
      const size_t sep = FirstSep(row);
      EXPECT(IsRun(row, 1, sep) && IsRun(row, sep + 1, row.ids.size() - 1));
      const bool same = DocOf(row.ids[1]) == DocOf(row.ids[sep + 1]);
      EXPECT(same == (row.label == 0));  // label 1: B from another document, never this one
      // B follows A, unless truncation (to a full row) cut between them.
      if (same && row.ids.size() < 32) {
        EXPECT(PosOf(row.ids[sep + 1]) == PosOf(row.ids[sep - 1]) + 1);
      }
      random += row.label;
      ++rows_seen;
    }
  }
  EXPECT(rows_seen > 1000);
  EXPECT(random > 0 && random < rows_seen);
}

// Rows stay within L with their layout; A and B are runs of their documents; word starts are
// the source's, except that the first token of a segment starts a word.
void TestTruncationKeepsLayoutAndWordStarts() {
  const OwnedChunk chunk = Synthetic(60, 6, 4, 20);  // sentences of 4..23 tokens
  for (SentenceTask task : {SentenceTask::kNsp, SentenceTask::kSop, SentenceTask::kNone}) {
    const bool pair = task != SentenceTask::kNone;
    int full = 0;
    for (int64_t length : {5, 6, 12, 17}) {
      for (const Row& row : Make(chunk, Options(task, length, 0.2), 3, length)) {
        CheckLayout(row, pair, length);
        full += static_cast<int64_t>(row.ids.size()) == length;
        const size_t sep = FirstSep(row);
        EXPECT(IsRun(row, 1, sep));
        if (pair) EXPECT(IsRun(row, sep + 1, row.ids.size() - 1));
        for (size_t t = 1; t + 1 < row.ids.size(); ++t) {
          if (t == sep) continue;
          const bool segment_start = t == 1 || t == sep + 1;
          EXPECT(row.boundary[t] == (segment_start ? 1 : PosOf(row.ids[t]) % 2 == 0));
        }
      }
    }
    EXPECT(full > 100);  // truncation happened
  }
}

void TestLabelsAreBalanced() {
  // SOP: every row's label is a fair coin.
  int ones = 0, n = 0;
  for (const Row& row : Make(Synthetic(1000, 10), Options(SentenceTask::kSop), 21, 0)) {
    ones += row.label;
    ++n;
  }
  EXPECT(n > 2000 && Balanced(ones, n));
  // NSP: a document that fits one row (short_seq_prob 0) makes its first instance from all
  // of its >= 2 sentences, and its label is a fair coin; later ones are 1 when only one
  // sentence is left.
  const OwnedChunk small = Synthetic(2000, 3, 2, 3);  // 3 sentences of 2..4 tokens
  ones = n = 0;
  int last_doc = -1;
  for (const Row& row : Make(small, Options(SentenceTask::kNsp, 32, 0), 21, 1)) {
    if (DocOf(row.ids[1]) == last_doc) continue;
    last_doc = DocOf(row.ids[1]);
    EXPECT(PosOf(row.ids[1]) == 0);
    ones += row.label;
    ++n;
  }
  EXPECT(n == 2000 && Balanced(ones, n));
}

void TestSopSplitsASingleSentence() {
  const OwnedChunk chunk = FromPieces({{"▁the ▁cat s ▁sat ▁on ▁the ▁mat"}});
  std::set<size_t> cuts;
  std::set<int> labels;
  for (uint64_t seed = 0; seed < 64; ++seed) {
    const std::vector<Row> rows = Make(chunk, Options(SentenceTask::kSop, 32, 0), seed, 0);
    EXPECT(rows.size() == 1);
    if (rows.empty()) continue;
    const Row& row = rows[0];
    CheckLayout(row, true, 32);
    const size_t sep = FirstSep(row);
    std::vector<int32_t> a(row.ids.begin() + 1, row.ids.begin() + sep);
    std::vector<int32_t> b(row.ids.begin() + sep + 1, row.ids.end() - 1);
    if (row.label == 1) std::swap(a, b);
    a.insert(a.end(), b.begin(), b.end());
    EXPECT(a == chunk.ids);  // the sentence, cut once, in order unless swapped
    cuts.insert(row.label == 1 ? row.ids.size() - 1 - sep : sep);
    labels.insert(row.label);
    // The cut may fall inside a word: the second part still starts one.
    EXPECT(row.boundary[sep + 1] == 1);
  }
  EXPECT(cuts.size() >= 5 && labels.size() == 2);
  // A one-token sentence cannot be split: no row.
  EXPECT(Make(FromPieces({{"▁cat"}}), Options(SentenceTask::kSop), 1, 1).empty());
}

int Sum(const std::vector<Row>& rows) {
  int own = 0;
  for (const Row& row : rows) own += row.own;
  return own;
}

// Own tokens on handmade chunks: what a row carries of its own document, exactly.
void TestOwnTokensAreExact() {
  // none, L = 8 (6 tokens): the 7-token sentence loses "▁far" to truncation.
  const OwnedChunk none = FromPieces({
      {"▁the ▁cat ▁sat", "▁on ▁the ▁mat"},
      {"▁un like ly ▁dog s ▁ran ▁far", "▁it ▁ran"},
  });
  for (uint64_t seed = 0; seed < 4; ++seed) {
    const std::vector<Row> rows = Make(none, Options(SentenceTask::kNone, 8, 0), seed, 1);
    EXPECT(rows.size() == 3);
    for (const Row& row : rows) EXPECT(row.own == static_cast<int>(row.ids.size()) - 2);
    EXPECT(Sum(rows) == 14 && none.ids.size() == 15);
  }
  // SOP: both segments are the document's, swapped or not; with room for them, all of it.
  const OwnedChunk sop = FromPieces({{"▁the ▁cat ▁sat", "▁on ▁the ▁mat"}});
  for (uint64_t seed = 0; seed < 16; ++seed) {
    const std::vector<Row> rows = Make(sop, Options(SentenceTask::kSop, 16, 0), seed, 0);
    EXPECT(rows.size() == 1 && Sum(rows) == 6);
    // L = 7 leaves 4 tokens of 6: truncation drops 2, whatever the coin.
    const std::vector<Row> cut = Make(sop, Options(SentenceTask::kSop, 7, 0), seed, 0);
    EXPECT(cut.size() == 1 && Sum(cut) == 4);
  }
  // SOP cannot split a one-token document: no row, its token is dropped.
  EXPECT(Sum(Make(FromPieces({{"▁cat"}, {"▁the ▁cat ▁sat"}}), Options(SentenceTask::kSop), 1, 1)) ==
         3);
  // NSP: a random B is not the row's own (A only); the sentence put back goes into the next
  // row, so each document's 6 tokens are carried exactly once.
  const OwnedChunk nsp = FromPieces({
      {"▁the ▁cat ▁sat", "▁on ▁the ▁mat"},
      {"▁a ▁dog ▁ran", "▁far ▁a way"},
  });
  std::set<int> labels;
  for (uint64_t seed = 0; seed < 64; ++seed) {
    const std::vector<Row> rows = Make(nsp, Options(SentenceTask::kNsp, 16, 0), seed, 0);
    for (const Row& row : rows) {
      EXPECT(row.own == (row.label == 1 ? 3 : 6));
      labels.insert(row.label);
    }
    EXPECT(Sum(rows) == 12);
  }
  EXPECT(labels.size() == 2);
}

// On synthetic chunks with truncation: a row's own tokens are those of A's document, and a
// document's rows never carry more of it than it has.
void TestOwnTokensCountTheRowsOwnDocument() {
  const OwnedChunk chunk = Synthetic(80, 6, 4, 20);  // sentences of 4..23 tokens
  std::vector<int> document_tokens(80, 0);
  for (int32_t id : chunk.ids) ++document_tokens[DocOf(id)];
  for (SentenceTask task : {SentenceTask::kNsp, SentenceTask::kSop, SentenceTask::kNone}) {
    for (int64_t length : {6, 17, 64}) {
      std::vector<int> carried(80, 0);
      int borrowed = 0;
      for (const Row& row : Make(chunk, Options(task, length, 0.2), 4, length)) {
        const int doc = DocOf(row.ids[1]);
        EXPECT(row.document == doc);
        int own = 0;
        for (int32_t id : row.ids) own += id >= 10 && DocOf(id) == doc;
        EXPECT(row.own == own);
        borrowed += own < static_cast<int>(row.ids.size()) - (task == SentenceTask::kNone ? 2 : 3);
        carried[doc] += row.own;
      }
      for (int d = 0; d < 80; ++d) EXPECT(carried[d] > 0 && carried[d] <= document_tokens[d]);
      EXPECT((borrowed > 0) == (task == SentenceTask::kNsp));
    }
  }
}

void TestEmptyDocumentsAndSentences() {
  const InstanceOptions nsp = Options(SentenceTask::kNsp, 12, 0.3);
  // Documents without tokens are skipped and not numbered: the same rows as without them.
  const OwnedChunk with_empty = FromPieces({
      {},
      {"▁the ▁cat ▁sat", "▁on ▁the ▁mat", "▁it ▁was ▁un like ly"},
      {"", ""},
      {"▁a ▁dog ▁ran ▁far ▁a way", "▁the ▁dog s ▁sat"},
      {},
  });
  const OwnedChunk without = FromPieces({
      {"▁the ▁cat ▁sat", "▁on ▁the ▁mat", "▁it ▁was ▁un like ly"},
      {"▁a ▁dog ▁ran ▁far ▁a way", "▁the ▁dog s ▁sat"},
  });
  for (uint64_t seed = 0; seed < 16; ++seed) {
    const std::vector<Row> a = Make(with_empty, nsp, seed, 9), b = Make(without, nsp, seed, 9);
    EXPECT(a.size() == b.size() && !a.empty());
    for (size_t r = 0; r < a.size() && r < b.size(); ++r) {
      EXPECT(a[r].ids == b[r].ids);
      // Documents are numbered in the chunk, those without tokens counted.
      EXPECT(a[r].document == (b[r].document == 0 ? 1 : 3) && b[r].document <= 1);
    }
  }
  // Empty sentences inside documents: rows keep their layout, A and B never empty.
  const OwnedChunk gaps = FromPieces({
      {"", "▁the ▁cat", "", "", "▁sat", ""},
      {"▁a ▁dog", "", "▁ran"},
      {"", "", "▁far ▁a way", ""},
  });
  for (SentenceTask task : {SentenceTask::kNsp, SentenceTask::kSop, SentenceTask::kNone}) {
    int rows = 0;
    for (uint64_t seed = 0; seed < 32; ++seed) {
      std::string error;
      for (const Row& row : Make(gaps, Options(task, 8, 0.5), seed, 0, &error)) {
        CheckLayout(row, task != SentenceTask::kNone, 8);
        ++rows;
      }
      EXPECT(error.empty());
    }
    EXPECT(rows >= 32);
  }
  // A chunk without documents, or without tokens, makes no rows.
  EXPECT(Make(FromPieces({}), nsp, 1, 1).empty());
  std::string error;
  EXPECT(Make(FromPieces({{"", ""}, {}}), nsp, 1, 1, &error).empty() && error.empty());
}

void TestNspNeedsTwoDocuments() {
  const std::string prefix = "sentence_task nsp needs at least two documents";
  for (const OwnedChunk& chunk :
       {FromPieces({{"▁the ▁cat ▁sat", "▁on ▁the ▁mat"}}), FromPieces({{}, {"▁the ▁cat"}, {""}})}) {
    std::string error;
    InstanceRows rows;
    EXPECT(!MakeInstances(chunk.view(), Options(SentenceTask::kNsp), 1, 2, &rows, &error));
    EXPECT(error.rfind(prefix, 0) == 0);
    EXPECT(error.find("this chunk holds one document") != std::string::npos);
    // SOP and none make instances from one document.
    EXPECT(MakeInstances(chunk.view(), Options(SentenceTask::kSop), 1, 2, &rows, &error));
    EXPECT(MakeInstances(chunk.view(), Options(SentenceTask::kNone), 1, 2, &rows, &error));
  }
  std::string error;
  InstanceRows rows;
  EXPECT(MakeInstances(FromPieces({{"▁the"}, {"▁cat"}}).view(), Options(SentenceTask::kNsp), 1, 2,
                       &rows, &error));
}

void TestValidation() {
  auto option_error = [](const InstanceOptions& o) {
    InstanceRows rows;
    std::string error;
    EXPECT(!MakeInstances(Synthetic(2, 2).view(), o, 1, 1, &rows, &error));
    EXPECT(error == ValidateOptions(o) && error.find('\n') == std::string::npos);
    return error;
  };
  EXPECT(ValidateOptions(Options(SentenceTask::kSop)).empty());
  EXPECT(ValidateOptions(Options(SentenceTask::kSop, 5)).empty());
  EXPECT(ValidateOptions(Options(SentenceTask::kNone, 4)).empty());
  EXPECT(option_error(Options(SentenceTask::kSop, 4)) ==
         "max_seq_length must be in [5, 2147483647] for sentence_task sop (3 [CLS]/[SEP] "
         "tokens and at least 2 others), got 4");
  EXPECT(option_error(Options(SentenceTask::kNone, 3)).rfind("max_seq_length must be in [4,", 0) ==
         0);
  EXPECT(option_error(Options(SentenceTask::kNone, int64_t{1} << 31)).rfind("max_seq_length", 0) ==
         0);
  EXPECT(option_error(Options(SentenceTask::kNsp, 32, 1.5)) ==
         "short_seq_prob must be in [0, 1], got 1.5");
  EXPECT(option_error(Options(SentenceTask::kNsp, 32, std::nan(""))).rfind("short_seq_prob", 0) ==
         0);
  InstanceOptions o = Options(SentenceTask::kSop);
  o.cls_id = int64_t{1} << 31;
  EXPECT(option_error(o) == "cls_id must be an int32 token id in [0, 2147483647], got 2147483648");
  o = Options(SentenceTask::kSop);
  o.sep_id = -1;
  EXPECT(option_error(o) == "sep_id must be an int32 token id in [0, 2147483647], got -1");

  auto chunk_error = [](const OwnedChunk& c) {
    InstanceRows rows;
    std::string error;
    EXPECT(!MakeInstances(c.view(), Options(SentenceTask::kSop), 1, 1, &rows, &error));
    EXPECT(error == ValidateChunk(c.view()));
    return error;
  };
  OwnedChunk c = Synthetic(2, 2);  // 2 documents of 2 sentences (3 and 6 tokens): 18 tokens
  EXPECT(ValidateChunk(c.view()).empty());
  c.word_starts.pop_back();
  EXPECT(chunk_error(c) == "word_starts has 17 entries for 18 token ids");
  c = Synthetic(2, 2);
  c.sentence_lengths[1] = -3;
  EXPECT(chunk_error(c) == "sentence_lengths[1] is negative (-3)");
  c = Synthetic(2, 2);
  c.sentence_lengths[1] += 1;
  EXPECT(chunk_error(c) == "sentence_lengths add up to 19 tokens, token_ids has 18");
  c = Synthetic(2, 2);
  c.document_sentences[0] = -1;
  EXPECT(chunk_error(c) == "document_sentences[0] is negative (-1)");
  c = Synthetic(2, 2);
  c.document_sentences.push_back(1);
  EXPECT(chunk_error(c) == "document_sentences add up to 5 sentences, sentence_lengths has 4");

  SentenceTask task = SentenceTask::kNone;
  EXPECT(ParseSentenceTask("nsp", &task) && task == SentenceTask::kNsp);
  EXPECT(ParseSentenceTask("sop", &task) && task == SentenceTask::kSop);
  EXPECT(ParseSentenceTask("none", &task) && task == SentenceTask::kNone);
  EXPECT(!ParseSentenceTask("NSP", &task));
}

}  // namespace
}  // namespace pretrain_records::instances

int main() {
  using namespace pretrain_records::instances;
  return pretrain_records::RunTests({
      {"NoneRowsAreExact", TestNoneRowsAreExact},
      {"SopTwoSentencesAreExact", TestSopTwoSentencesAreExact},
      {"NspRowsAreExact", TestNspRowsAreExact},
      {"PinnedRows", TestPinnedRows},
      {"SameSeedSameRows", TestSameSeedSameRows},
      {"DocumentRowsDoNotDependOnLaterDocuments", TestDocumentRowsDoNotDependOnLaterDocuments},
      {"OtherSeedsOtherRows", TestOtherSeedsOtherRows},
      {"SeedAndDocumentKeysDoNotOverlap", TestSeedAndDocumentKeysDoNotOverlap},
      {"NspRandomSegmentsComeFromOtherDocuments", TestNspRandomSegmentsComeFromOtherDocuments},
      {"TruncationKeepsLayoutAndWordStarts", TestTruncationKeepsLayoutAndWordStarts},
      {"LabelsAreBalanced", TestLabelsAreBalanced},
      {"SopSplitsASingleSentence", TestSopSplitsASingleSentence},
      {"OwnTokensAreExact", TestOwnTokensAreExact},
      {"OwnTokensCountTheRowsOwnDocument", TestOwnTokensCountTheRowsOwnDocument},
      {"EmptyDocumentsAndSentences", TestEmptyDocumentsAndSentences},
      {"NspNeedsTwoDocuments", TestNspNeedsTwoDocuments},
      {"Validation", TestValidation},
  });
}
