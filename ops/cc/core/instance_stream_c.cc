// C API of InstanceStream, for Python's ctypes (which releases the GIL during each call).
#include <algorithm>
#include <cstdint>
#include <string>

#include "instance_stream.h"

using pretrain_records::InstanceOptions;
using pretrain_records::InstanceStream;
using pretrain_records::SentenceTask;

extern "C" {

// Returns a new stream, or null with *error set (a static message) when the options are invalid.
void* mpr_instances_new(int max_seq_length, double short_seq_prob, int task, int32_t cls_id,
                        int32_t sep_id, uint64_t seed, uint64_t shuffle_seed, int shuffle_buffer,
                        int pool_documents, int64_t pool_tokens, char* error, int error_size) {
  InstanceOptions o;
  o.max_seq_length = max_seq_length;
  o.short_seq_prob = short_seq_prob;
  o.task = static_cast<SentenceTask>(task);
  o.cls_id = cls_id;
  o.sep_id = sep_id;
  o.seed = seed;
  o.shuffle_seed = shuffle_seed;
  o.shuffle_buffer = shuffle_buffer;
  o.pool_documents = pool_documents;
  o.pool_tokens = pool_tokens;
  std::string problem = task < 0 || task > 2 ? "unknown sentence task"
                                             : pretrain_records::ValidateInstanceOptions(o);
  if (!problem.empty()) {
    problem.copy(error, error_size - 1);
    error[std::min<size_t>(problem.size(), error_size - 1)] = '\0';
    return nullptr;
  }
  return new InstanceStream(o);
}

void mpr_instances_free(void* stream) { delete static_cast<InstanceStream*>(stream); }

void mpr_instances_start_pass(void* stream, uint64_t pass) {
  static_cast<InstanceStream*>(stream)->StartPass(pass);
}

// Adds n_documents documents: document d has doc_sentences[d] sentences, taken in order from
// sentence_lengths; their tokens in order from ids and flags.
int mpr_instances_add_documents(void* stream, const int32_t* ids, const int8_t* flags,
                                const int32_t* sentence_lengths, const int32_t* doc_sentences,
                                int64_t n_documents) {
  auto* s = static_cast<InstanceStream*>(stream);
  for (int64_t d = 0; d < n_documents; ++d) {
    int64_t tokens = 0;
    for (int32_t k = 0; k < doc_sentences[d]; ++k) tokens += sentence_lengths[k];
    if (!s->AddDocument(ids, flags, sentence_lengths, doc_sentences[d])) return -1;
    ids += tokens;
    flags += tokens;
    sentence_lengths += doc_sentences[d];
  }
  return 0;
}

int mpr_instances_end_pass(void* stream) {
  return static_cast<InstanceStream*>(stream)->EndPass() ? 0 : -1;
}

void mpr_instances_finish(void* stream) { static_cast<InstanceStream*>(stream)->Finish(); }

int64_t mpr_instances_ready(void* stream) { return static_cast<InstanceStream*>(stream)->Ready(); }

int64_t mpr_instances_take(void* stream, int64_t max_rows, int32_t* ids, int32_t* segment_ids,
                           int32_t* boundary, int32_t* lengths, int32_t* labels) {
  return static_cast<InstanceStream*>(stream)->Take(max_rows, ids, segment_ids, boundary, lengths,
                                                    labels);
}

const char* mpr_instances_error(void* stream) {
  return static_cast<InstanceStream*>(stream)->error().c_str();
}

}  // extern "C"
