#include "instance_maker.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <utility>

namespace pretrain_records::instances {
namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

int Reserved(SentenceTask task) { return task == SentenceTask::kNone ? 2 : 3; }

const char* TaskName(SentenceTask task) {
  switch (task) {
    case SentenceTask::kNsp:
      return "nsp";
    case SentenceTask::kSop:
      return "sop";
    case SentenceTask::kNone:
      return "none";
  }
  return "?";
}

std::string Format(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g", value);
  return buffer;
}

// A document with tokens: its sentences are [first, first + sentences) of the chunk.
struct Document {
  int64_t first = 0;
  int64_t sentences = 0;
  bool planned = false;  // in the chunk's document range: makes instances
  int64_t index = 0;     // in the chunk (documents without tokens counted)
};

// A token range [begin, end) of the chunk.
struct Segment {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};

// The draws of one chunk: BERT's create_instances_from_document per document.
class Planner {
 public:
  Planner(const Chunk& chunk, const InstanceOptions& options, std::vector<Instance>* out)
      : options_(options), max_tokens_(options.max_seq_length - Reserved(options.task)), out_(out) {
    sentence_start_.resize(chunk.sentence_lengths.size + 1);
    sentence_start_[0] = 0;
    for (int64_t s = 0; s < chunk.sentence_lengths.size; ++s) {
      sentence_start_[s + 1] = sentence_start_[s] + chunk.sentence_lengths[s];
    }
    const int64_t end =
        chunk.end_document < 0 ? chunk.document_sentences.size : chunk.end_document;
    int64_t first = 0;
    for (int64_t d = 0; d < chunk.document_sentences.size; ++d) {
      const int64_t sentences = chunk.document_sentences[d];
      // A document without tokens makes no instances and is not numbered.
      if (sentence_start_[first + sentences] > sentence_start_[first]) {
        const bool planned = d >= chunk.first_document && d < end;
        documents_.push_back({first, sentences, planned, d});
        planned_ += planned;
      }
      first += sentences;
    }
  }

  int64_t documents() const { return static_cast<int64_t>(documents_.size()); }
  int64_t planned() const { return planned_; }

  void Plan(uint64_t seed0, uint64_t seed1) {
    int64_t number = 0;
    for (int64_t d = 0; d < documents(); ++d) {
      if (!documents_[d].planned) continue;
      RowRandom rng = DocumentRandom(seed0, seed1, number++);
      PlanDocument(d, rng);
    }
  }

 private:
  // The token offset where sentence s of document doc starts (s may be doc.sentences).
  int64_t Start(const Document& doc, int64_t s) const { return sentence_start_[doc.first + s]; }

  int64_t DrawTarget(RowRandom& rng) const {
    if (rng.Uniform() >= options_.short_seq_prob) return max_tokens_;
    return 2 + static_cast<int64_t>(rng.Below(max_tokens_ - 1));
  }

  void PlanDocument(int64_t d, RowRandom& rng) {
    const Document& doc = documents_[d];
    int64_t target = DrawTarget(rng);
    int64_t first = 0;
    int64_t length = 0;
    for (int64_t i = 0; i < doc.sentences; ++i) {
      length += Start(doc, i + 1) - Start(doc, i);
      if (i == doc.sentences - 1 || length >= target) {
        i -= MakeOne(d, first, i, target, rng);
        first = i + 1;
        length = 0;
        target = DrawTarget(rng);
      }
    }
  }

  // Makes one instance from sentences [first, last] of document d; returns how many of
  // them it did not use (NSP puts back what follows A when B is random).
  int64_t MakeOne(int64_t d, int64_t first, int64_t last, int64_t target, RowRandom& rng) {
    const Document& doc = documents_[d];
    const int64_t sentences = last - first + 1;
    const Segment whole{Start(doc, first), Start(doc, last + 1)};
    if (options_.task == SentenceTask::kNone) {
      const Segment a{whole.begin, std::min(whole.end, whole.begin + max_tokens_)};
      if (a.size() > 0) out_->push_back({a.begin, a.end, 0, 0, 0, false, doc.index});
      return 0;
    }
    const int64_t a_sentences =
        sentences >= 2 ? 1 + static_cast<int64_t>(rng.Below(sentences - 1)) : 1;
    Segment a{whole.begin, Start(doc, first + a_sentences)};
    Segment b{a.end, whole.end};
    int32_t label = 0;
    bool borrowed = false;
    int64_t unused = 0;
    if (options_.task == SentenceTask::kNsp) {
      if (sentences == 1 || rng.Uniform() < 0.5) {
        label = 1;  // B is random text from another document
        borrowed = true;
        b = RandomSegment(d, std::max<int64_t>(1, target - a.size()), rng);
        unused = sentences - a_sentences;
      }
    } else {  // SOP
      if (sentences == 1) {
        if (whole.size() < 2) return 0;
        const int64_t cut = whole.begin + 1 + static_cast<int64_t>(rng.Below(whole.size() - 1));
        a = {whole.begin, cut};
        b = {cut, whole.end};
      }
      if (rng.Uniform() < 0.5) {
        std::swap(a, b);
        label = 1;
      }
    }
    Truncate(&a, &b, rng);
    if (a.size() > 0 && b.size() > 0) {
      out_->push_back({a.begin, a.end, b.begin, b.end, label, borrowed, doc.index});
    }
    return unused;
  }

  // Sentences of a uniformly random other document, from a random one on, until target
  // tokens are reached (or the document ends).
  Segment RandomSegment(int64_t d, int64_t target, RowRandom& rng) const {
    int64_t k = static_cast<int64_t>(rng.Below(documents() - 1));
    if (k >= d) ++k;
    const Document& doc = documents_[k];
    int64_t s = static_cast<int64_t>(rng.Below(doc.sentences));
    const int64_t begin = Start(doc, s);
    while (s < doc.sentences && Start(doc, s + 1) - begin < target) ++s;
    return {begin, Start(doc, std::min(s + 1, doc.sentences))};
  }

  // BERT's truncate_seq_pair: one token at a time from the longer side (B on a tie), from
  // its front or back by a coin.
  void Truncate(Segment* a, Segment* b, RowRandom& rng) const {
    int64_t excess = a->size() + b->size() - max_tokens_;
    uint64_t coins = 0;
    for (int bit = 64; excess > 0; --excess, ++bit) {
      if (bit == 64) {
        coins = rng.Next();
        bit = 0;
      }
      Segment* side = a->size() > b->size() ? a : b;
      if ((coins >> bit) & 1) {
        ++side->begin;
      } else {
        --side->end;
      }
    }
  }

  const InstanceOptions& options_;
  const int64_t max_tokens_;  // of A and B together
  std::vector<Instance>* out_;
  std::vector<int64_t> sentence_start_;  // [S + 1] token offsets
  std::vector<Document> documents_;      // those with tokens
  int64_t planned_ = 0;                  // of them, those in the document range
};

}  // namespace

std::string ValidateOptions(const InstanceOptions& o) {
  const int reserved = Reserved(o.task);
  if (o.max_seq_length < reserved + 2 || o.max_seq_length > kInt32Max) {
    return "max_seq_length must be in [" + std::to_string(reserved + 2) + ", " +
           std::to_string(kInt32Max) + "] for sentence_task " + TaskName(o.task) + " (" +
           std::to_string(reserved) + " [CLS]/[SEP] tokens and at least 2 others), got " +
           std::to_string(o.max_seq_length);
  }
  if (!(o.short_seq_prob >= 0 && o.short_seq_prob <= 1)) {
    return "short_seq_prob must be in [0, 1], got " + Format(o.short_seq_prob);
  }
  for (const auto& [name, id] : {std::pair{"cls_id", o.cls_id}, std::pair{"sep_id", o.sep_id}}) {
    if (id < 0 || id > kInt32Max) {
      return std::string(name) + " must be an int32 token id in [0, " + std::to_string(kInt32Max) +
             "], got " + std::to_string(id);
    }
  }
  return "";
}

bool ParseSentenceTask(const std::string& name, SentenceTask* task) {
  for (SentenceTask t : {SentenceTask::kNsp, SentenceTask::kSop, SentenceTask::kNone}) {
    if (name == TaskName(t)) {
      *task = t;
      return true;
    }
  }
  return false;
}

std::string ValidateChunk(const Chunk& chunk) {
  if (chunk.word_starts.size != chunk.ids.size) {
    return "word_starts has " + std::to_string(chunk.word_starts.size) + " entries for " +
           std::to_string(chunk.ids.size) + " token ids";
  }
  int64_t tokens = 0;
  for (int64_t s = 0; s < chunk.sentence_lengths.size; ++s) {
    if (chunk.sentence_lengths[s] < 0) {
      return "sentence_lengths[" + std::to_string(s) + "] is negative (" +
             std::to_string(chunk.sentence_lengths[s]) + ")";
    }
    tokens += chunk.sentence_lengths[s];
  }
  if (tokens != chunk.ids.size) {
    return "sentence_lengths add up to " + std::to_string(tokens) + " tokens, token_ids has " +
           std::to_string(chunk.ids.size);
  }
  int64_t sentences = 0;
  for (int64_t d = 0; d < chunk.document_sentences.size; ++d) {
    if (chunk.document_sentences[d] < 0) {
      return "document_sentences[" + std::to_string(d) + "] is negative (" +
             std::to_string(chunk.document_sentences[d]) + ")";
    }
    sentences += chunk.document_sentences[d];
  }
  if (sentences != chunk.sentence_lengths.size) {
    return "document_sentences add up to " + std::to_string(sentences) +
           " sentences, sentence_lengths has " + std::to_string(chunk.sentence_lengths.size);
  }
  const int64_t count = chunk.document_sentences.size;
  const int64_t end = chunk.end_document < 0 ? count : chunk.end_document;
  if (chunk.first_document < 0 || chunk.first_document > end || end > count) {
    return "the document range [" + std::to_string(chunk.first_document) + ", " +
           std::to_string(end) + ") is not within the chunk's " + std::to_string(count) +
           " documents";
  }
  return "";
}

int64_t OwnTokens(const Instance& instance) {
  const int64_t a = instance.a_end - instance.a_begin;
  return instance.b_borrowed ? a : a + instance.b_end - instance.b_begin;
}

RowRandom DocumentRandom(uint64_t seed0, uint64_t seed1, int64_t document) {
  // Mix is a bijection, so for one seed0 distinct seed1 give distinct keys; the document is
  // the row of its key (as instance_stream.cc keys pass, then document).
  return RowRandom(RowRandom::Mix(seed0 ^ RowRandom::Mix(seed1 ^ 0x452821E638D01377ull)), 0,
                   static_cast<uint64_t>(document));
}

bool PlanInstances(const Chunk& chunk, const InstanceOptions& options, uint64_t seed0,
                   uint64_t seed1, std::vector<Instance>* out, std::string* error) {
  out->clear();
  std::string problem = ValidateChunk(chunk);
  if (!problem.empty()) {
    *error = std::move(problem);
    return false;
  }
  Planner planner(chunk, options, out);
  // Decided before any draw, so whether a chunk fails never depends on the seed.
  if (options.task == SentenceTask::kNsp && planner.planned() > 0 && planner.documents() == 1) {
    *error =
        "sentence_task nsp needs at least two documents to draw random segments from; "
        "this chunk holds one document with tokens (use sentence_task sop or none)";
    return false;
  }
  planner.Plan(seed0, seed1);
  return true;
}

void WriteRows(const Chunk& chunk, const InstanceOptions& options,
               const std::vector<Instance>& instances, int32_t* input_ids, int32_t* segment_ids,
               int32_t* token_boundary, int32_t* lengths, int32_t* labels, int32_t* own_tokens,
               int32_t* documents) {
  const int64_t length = options.max_seq_length;
  const bool pair = options.task != SentenceTask::kNone;
  const auto cls = static_cast<int32_t>(options.cls_id);
  const auto sep = static_cast<int32_t>(options.sep_id);
  for (int64_t r = 0; r < static_cast<int64_t>(instances.size()); ++r) {
    const Instance& instance = instances[r];
    int32_t* ids = input_ids + r * length;
    int32_t* segments = segment_ids + r * length;
    int32_t* boundary = token_boundary + r * length;
    int64_t k = 0;
    auto put = [&](int64_t begin, int64_t end, int32_t segment) {
      std::copy(chunk.ids.data + begin, chunk.ids.data + end, ids + k);
      std::fill(segments + k, segments + k + (end - begin) + 1, segment);
      for (int64_t t = begin; t < end; ++t) boundary[k + t - begin] = chunk.word_starts[t] != 0;
      // Truncation from the front can leave a word's tail first: it starts what is left.
      boundary[k] = 1;
      k += end - begin;
      ids[k] = sep;
      boundary[k] = 1;
      ++k;
    };
    ids[0] = cls;
    segments[0] = 0;
    boundary[0] = 1;
    k = 1;
    put(instance.a_begin, instance.a_end, 0);
    if (pair) put(instance.b_begin, instance.b_end, 1);
    std::fill(ids + k, ids + length, 0);
    std::fill(segments + k, segments + length, 0);
    std::fill(boundary + k, boundary + length, 0);
    lengths[r] = static_cast<int32_t>(k);
    labels[r] = instance.label;
    own_tokens[r] = static_cast<int32_t>(OwnTokens(instance));  // at most L - 2
    documents[r] = static_cast<int32_t>(instance.document);
  }
}

bool MakeInstances(const Chunk& chunk, const InstanceOptions& options, uint64_t seed0,
                   uint64_t seed1, InstanceRows* out, std::string* error) {
  std::string problem = ValidateOptions(options);
  if (!problem.empty()) {
    *error = std::move(problem);
    return false;
  }
  std::vector<Instance> instances;
  if (!PlanInstances(chunk, options, seed0, seed1, &instances, error)) return false;
  const int64_t rows = static_cast<int64_t>(instances.size());
  out->max_seq_length = options.max_seq_length;
  out->input_ids.resize(rows * options.max_seq_length);
  out->segment_ids.resize(rows * options.max_seq_length);
  out->token_boundary.resize(rows * options.max_seq_length);
  out->lengths.resize(rows);
  out->labels.resize(rows);
  out->own_tokens.resize(rows);
  out->documents.resize(rows);
  WriteRows(chunk, options, instances, out->input_ids.data(), out->segment_ids.data(),
            out->token_boundary.data(), out->lengths.data(), out->labels.data(),
            out->own_tokens.data(), out->documents.data());
  return true;
}

}  // namespace pretrain_records::instances
