// BERT/ALBERT sentence-pair instances from tokenized documents, in plain C++17.
//
// Follows BERT's create_instances_from_document (target length, short_seq_prob,
// random split point, truncation from a random end) with every draw from a
// counter-based generator keyed by (seed, pass, document), so output is
// reproducible. NSP's random segment comes from a bounded window of *other*
// documents around the current one; SOP splits a single-sentence chunk inside the
// sentence. Instances pass through a bounded seeded shuffle buffer and leave as
// padded rows. The C API in instance_stream_c.cc exposes it to Python.
#ifndef PRETRAIN_RECORDS_OPS_CC_CORE_INSTANCE_STREAM_H_
#define PRETRAIN_RECORDS_OPS_CC_CORE_INSTANCE_STREAM_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "row_random.h"

namespace pretrain_records {

enum class SentenceTask { kNsp = 0, kSop = 1, kNone = 2 };

struct InstanceOptions {
  int max_seq_length = 128;
  double short_seq_prob = 0.1;
  SentenceTask task = SentenceTask::kSop;
  int32_t cls_id = 2;
  int32_t sep_id = 3;
  uint64_t seed = 0;            // instance draws
  uint64_t shuffle_seed = 0;    // shuffle buffer draws
  int shuffle_buffer = 10000;   // instances held for shuffling (0: no shuffle)
  int pool_documents = 256;     // NSP: documents kept before and after the current one
  int64_t pool_tokens = 4000000;  // and at most this many tokens in the window
};

// Returns an empty string when the options are valid, else a one-line message.
std::string ValidateInstanceOptions(const InstanceOptions& options);

class InstanceStream {
 public:
  explicit InstanceStream(const InstanceOptions& options);  // options must be valid

  // Starts pass `pass` (a dupe pass): documents are numbered from 0 again.
  void StartPass(uint64_t pass);
  // Adds the next document: n_sentences sentences of the given token counts,
  // their ids and word-start flags concatenated. Empty sentences are allowed;
  // a document without tokens is skipped. False on error (see error()).
  bool AddDocument(const int32_t* ids, const int8_t* flags, const int32_t* sentence_lengths,
                   int64_t n_sentences);
  // Ends the pass: makes the instances of the documents still held. False on error.
  bool EndPass();
  // Ends the stream: releases the shuffle buffer (in a seeded random order).
  void Finish();

  // Instances ready to be taken.
  int64_t Ready() const { return static_cast<int64_t>(ready_.size()); }
  // Moves up to max_rows ready instances into [rows, max_seq_length] row-major
  // arrays, padded with 0, plus their lengths and labels; returns how many.
  int64_t Take(int64_t max_rows, int32_t* ids, int32_t* segment_ids, int32_t* boundary,
               int32_t* lengths, int32_t* labels);

  const std::string& error() const { return error_; }

 private:
  struct Document {
    std::vector<int32_t> ids;
    std::vector<int8_t> flags;
    std::vector<int64_t> sentence_start;  // [n_sentences + 1] token offsets
    int64_t index = 0;                    // number in the pass
    int64_t sentences() const { return static_cast<int64_t>(sentence_start.size()) - 1; }
    int64_t tokens() const { return static_cast<int64_t>(ids.size()); }
  };
  // A token range of one document.
  struct Segment {
    const Document* doc = nullptr;
    int64_t begin = 0;
    int64_t end = 0;
    int64_t size() const { return end - begin; }
  };

  bool ProcessReady(bool flush);
  bool MakeInstances(const Document& doc);
  // Makes one instance from sentences [first, last] of doc; *unused: sentences to put back.
  bool MakeOne(const Document& doc, int64_t first, int64_t last, int target, RowRandom& rng,
               int64_t* unused);
  bool RandomSegment(RowRandom& rng, int64_t target, Segment* out);
  void Truncate(Segment* a, Segment* b, RowRandom& rng) const;
  void Emit(const Segment& a, const Segment* b, int label);
  int DrawTarget(RowRandom& rng) const;
  int32_t* SlotIds(int64_t slot) { return ids_.data() + slot * length_; }

  InstanceOptions options_;
  int length_;      // max_seq_length
  int max_tokens_;  // of A and B together
  uint64_t pass_ = 0;
  int64_t next_document_ = 0;
  std::deque<std::unique_ptr<Document>> ahead_;   // current first, then look-ahead
  std::deque<std::unique_ptr<Document>> behind_;  // done, kept for NSP
  int64_t pool_tokens_ = 0;
  std::string error_;

  // Instance slots: [slot * length_, ...) rows; a free list recycles them.
  std::vector<int32_t> ids_;
  std::vector<int8_t> segments_, boundary_;
  std::vector<int32_t> lengths_, labels_;
  std::vector<int64_t> free_;
  std::vector<int64_t> buffer_;  // the shuffle buffer
  std::deque<int64_t> ready_;
  RowRandom shuffle_rng_;
};

}  // namespace pretrain_records

#endif  // PRETRAIN_RECORDS_OPS_CC_CORE_INSTANCE_STREAM_H_
