// BERT/ALBERT sentence-pair instances of a chunk of tokenized documents, in plain
// C++17 (no TensorFlow types), stateless.
//
// Follows BERT's create_instances_from_document: a target length (short_seq_prob),
// a random A/B split point, the NSP or SOP label, truncation one token at a time
// from the longer side and a random end. Document d of a chunk draws from its own
// counter-based stream keyed by (seed0, seed1, d), so the same chunk and seed give
// the same rows whatever the parallelism. NSP's random segment comes from another
// document of the same chunk; SOP splits a single-sentence chunk inside the sentence.
// Rows come out padded, in document order (a later global merge shuffles them).
//
// The TensorFlow kernel in ../kernels/make_instances_kernel.cc is a thin adapter.
#ifndef PRETRAIN_RECORDS_OPS_CC_CORE_INSTANCE_MAKER_H_
#define PRETRAIN_RECORDS_OPS_CC_CORE_INSTANCE_MAKER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "row_random.h"

// A namespace of its own: instance_stream.h, in the same library, has its own
// InstanceOptions and SentenceTask.
namespace pretrain_records::instances {

enum class SentenceTask { kNsp, kSop, kNone };

struct InstanceOptions {
  int64_t max_seq_length = 128;  // L: [CLS], [SEP]s and padding included
  double short_seq_prob = 0.1;   // chance of a shorter target length, as BERT
  SentenceTask task = SentenceTask::kSop;
  int64_t cls_id = 2;
  int64_t sep_id = 3;
};

// Returns an empty string when the options are valid, else a one-line message.
std::string ValidateOptions(const InstanceOptions& options);

// Parses "nsp", "sop" or "none"; false for anything else.
bool ParseSentenceTask(const std::string& name, SentenceTask* task);

// A read-only array the chunk does not own.
template <typename T>
struct ArrayView {
  const T* data = nullptr;
  int64_t size = 0;
  ArrayView() = default;
  ArrayView(const T* data_in, int64_t size_in) : data(data_in), size(size_in) {}
  ArrayView(const std::vector<T>& v) : data(v.data()), size(static_cast<int64_t>(v.size())) {}
  const T& operator[](int64_t i) const { return data[i]; }
};

// A group of tokenized documents. Instances are made of documents [first_document,
// end_document) (all of them by default); every document of the chunk is in NSP's pool of
// random segments, so a chunk can carry its neighbours' documents as that pool.
struct Chunk {
  ArrayView<int32_t> ids;                 // [T] the tokens of every sentence, concatenated
  ArrayView<int8_t> word_starts;          // [T] 1 where a token starts a word
  ArrayView<int32_t> sentence_lengths;    // [S] tokens per sentence (0 allowed)
  ArrayView<int32_t> document_sentences;  // [D] sentences per document (0 allowed)
  int64_t first_document = 0;
  int64_t end_document = -1;  // -1: to the last document
};

// Returns an empty string when the chunk's arrays agree, else a one-line message.
std::string ValidateChunk(const Chunk& chunk);

// One instance: token ranges [begin, end) of the chunk's ids. b is empty for task none.
struct Instance {
  int64_t a_begin = 0, a_end = 0;
  int64_t b_begin = 0, b_end = 0;
  int32_t label = 0;
  bool b_borrowed = false;  // B is NSP's random segment from another document
  int64_t document = 0;     // the chunk's document A comes from (its index in the chunk)
};

// The tokens an instance carries from its own document: A, and B unless borrowed. Summed
// over a chunk's instances, at most the tokens of its planned documents: the difference is
// what truncation and SOP's unsplittable one-token documents leave out (a short target only
// makes more instances; NSP's put-back sentences are used once, by the next instance).
int64_t OwnTokens(const Instance& instance);

// The stream document d (numbered among the documents with tokens that make instances) of a
// chunk draws from.
// seed1 and d are mixed, not added: for one seed0, distinct seed1 give distinct keys and
// a key's documents distinct streams, so (seed1, d) and (seed1 + 1, d - 1) are unrelated
// (e.g. seed = (pass key, chunk index) gives every document of every chunk its own draws).
RowRandom DocumentRandom(uint64_t seed0, uint64_t seed1, int64_t document);

// Chooses the instances of a chunk, in document order. Options must be valid. False
// with *error set (one line) when the chunk is invalid or cannot make them (NSP with
// one document).
bool PlanInstances(const Chunk& chunk, const InstanceOptions& options, uint64_t seed0,
                   uint64_t seed1, std::vector<Instance>* out, std::string* error);

// Writes instances as rows of max_seq_length: [CLS] A [SEP] (B [SEP]), then 0s.
// input_ids, segment_ids, token_boundary: [n, L] row-major; lengths, labels, own_tokens
// (OwnTokens of each instance), documents (the chunk's document of each): [n].
// The first token of a segment starts a word (front truncation can cut a word).
void WriteRows(const Chunk& chunk, const InstanceOptions& options,
               const std::vector<Instance>& instances, int32_t* input_ids, int32_t* segment_ids,
               int32_t* token_boundary, int32_t* lengths, int32_t* labels, int32_t* own_tokens,
               int32_t* documents);

// Padded instance rows, row-major.
struct InstanceRows {
  int64_t max_seq_length = 0;
  std::vector<int32_t> input_ids, segment_ids, token_boundary;  // [n * L]
  std::vector<int32_t> lengths, labels, own_tokens, documents;  // [n]
  int64_t rows() const { return static_cast<int64_t>(lengths.size()); }
};

// PlanInstances then WriteRows. False with *error set on invalid options or chunk, or
// when the chunk cannot make the instances.
bool MakeInstances(const Chunk& chunk, const InstanceOptions& options, uint64_t seed0,
                   uint64_t seed1, InstanceRows* out, std::string* error);

}  // namespace pretrain_records::instances

#endif  // PRETRAIN_RECORDS_OPS_CC_CORE_INSTANCE_MAKER_H_
