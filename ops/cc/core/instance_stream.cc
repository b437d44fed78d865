#include "instance_stream.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace pretrain_records {

std::string ValidateInstanceOptions(const InstanceOptions& o) {
  const int reserved = o.task == SentenceTask::kNone ? 2 : 3;
  if (o.max_seq_length < reserved + 2) {
    return "max_seq_length must leave at least 2 tokens besides [CLS]/[SEP]";
  }
  if (!(o.short_seq_prob >= 0 && o.short_seq_prob <= 1)) return "short_seq_prob must be in [0, 1]";
  if (o.shuffle_buffer < 0) return "shuffle_buffer must be >= 0";
  if (o.pool_documents < 1 || o.pool_tokens < 1) return "the NSP window must be positive";
  return "";
}

InstanceStream::InstanceStream(const InstanceOptions& options)
    : options_(options),
      length_(options.max_seq_length),
      max_tokens_(options.max_seq_length - (options.task == SentenceTask::kNone ? 2 : 3)),
      shuffle_rng_(options.shuffle_seed, 0, 0) {}

void InstanceStream::StartPass(uint64_t pass) {
  pass_ = pass;
  next_document_ = 0;
  ahead_.clear();
  behind_.clear();
  pool_tokens_ = 0;
}

bool InstanceStream::AddDocument(const int32_t* ids, const int8_t* flags,
                                 const int32_t* sentence_lengths, int64_t n_sentences) {
  auto doc = std::make_unique<Document>();
  doc->sentence_start.resize(n_sentences + 1);
  int64_t tokens = 0;
  for (int64_t s = 0; s < n_sentences; ++s) {
    doc->sentence_start[s] = tokens;
    tokens += sentence_lengths[s];
  }
  doc->sentence_start[n_sentences] = tokens;
  if (tokens == 0) return true;  // nothing to make instances from; not numbered
  doc->ids.assign(ids, ids + tokens);
  doc->flags.assign(flags, flags + tokens);
  doc->index = next_document_++;
  pool_tokens_ += tokens;
  ahead_.push_back(std::move(doc));
  return ProcessReady(/*flush=*/false);
}

bool InstanceStream::EndPass() {
  const bool ok = ProcessReady(/*flush=*/true);
  StartPass(pass_);
  return ok;
}

// A document is made into instances once the window ahead of it is full (NSP), at once
// otherwise; it then moves behind, and the window behind is trimmed.
bool InstanceStream::ProcessReady(bool flush) {
  const bool nsp = options_.task == SentenceTask::kNsp;
  while (!ahead_.empty()) {
    const bool window_full = static_cast<int64_t>(ahead_.size()) - 1 >= options_.pool_documents ||
                             pool_tokens_ >= options_.pool_tokens / 2;
    if (nsp && !flush && !window_full) return true;
    if (!MakeInstances(*ahead_.front())) return false;
    if (!nsp) {
      pool_tokens_ -= ahead_.front()->tokens();
      ahead_.pop_front();
      continue;
    }
    behind_.push_back(std::move(ahead_.front()));
    ahead_.pop_front();
    while (static_cast<int64_t>(behind_.size()) > options_.pool_documents ||
           (behind_.size() > 1 && pool_tokens_ > options_.pool_tokens)) {
      pool_tokens_ -= behind_.front()->tokens();
      behind_.pop_front();
    }
  }
  return true;
}

int InstanceStream::DrawTarget(RowRandom& rng) const {
  if (rng.Uniform() >= options_.short_seq_prob) return max_tokens_;
  return 2 + static_cast<int>(rng.Below(max_tokens_ - 1));
}

bool InstanceStream::MakeInstances(const Document& doc) {
  // Keyed by pass, then document: (pass, document) pairs never share a stream.
  RowRandom rng(RowRandom::Mix(options_.seed ^ RowRandom::Mix(pass_ + 1)), 0,
                static_cast<uint64_t>(doc.index));
  int target = DrawTarget(rng);
  const int64_t n = doc.sentences();
  int64_t first = 0;
  int64_t length = 0;
  for (int64_t i = 0; i < n; ++i) {
    length += doc.sentence_start[i + 1] - doc.sentence_start[i];
    if (i == n - 1 || length >= target) {
      int64_t unused = 0;
      if (!MakeOne(doc, first, i, target, rng, &unused)) return false;
      i -= unused;
      first = i + 1;
      length = 0;
      target = DrawTarget(rng);
    }
  }
  return true;
}

bool InstanceStream::MakeOne(const Document& doc, int64_t first, int64_t last, int target,
                             RowRandom& rng, int64_t* unused) {
  const auto& start = doc.sentence_start;
  const int64_t sentences = last - first + 1;
  Segment whole{&doc, start[first], start[last + 1]};
  if (options_.task == SentenceTask::kNone) {
    whole.end = std::min(whole.end, whole.begin + max_tokens_);
    if (whole.size() > 0) Emit(whole, nullptr, 0);
    return true;
  }
  const int64_t a_sentences =
      sentences >= 2 ? 1 + static_cast<int64_t>(rng.Below(sentences - 1)) : 1;
  Segment a{&doc, start[first], start[first + a_sentences]};
  Segment b{&doc, start[first + a_sentences], start[last + 1]};
  int label = 0;
  if (options_.task == SentenceTask::kNsp) {
    if (sentences == 1 || rng.Uniform() < 0.5) {
      label = 1;  // B is random text from another document
      if (!RandomSegment(rng, std::max<int64_t>(1, target - a.size()), &b)) return false;
      *unused = sentences - a_sentences;  // put back what A did not use
    }
  } else {  // SOP
    if (sentences == 1) {
      if (whole.size() < 2) return true;
      const int64_t cut = whole.begin + 1 + static_cast<int64_t>(rng.Below(whole.size() - 1));
      a = {&doc, whole.begin, cut};
      b = {&doc, cut, whole.end};
    }
    if (rng.Uniform() < 0.5) {
      std::swap(a, b);
      label = 1;
    }
  }
  Truncate(&a, &b, rng);
  if (a.size() > 0 && b.size() > 0) Emit(a, &b, label);
  return true;
}

bool InstanceStream::RandomSegment(RowRandom& rng, int64_t target, Segment* out) {
  const int64_t behind = static_cast<int64_t>(behind_.size());
  const int64_t others = behind + static_cast<int64_t>(ahead_.size()) - 1;  // ahead_[0] is current
  if (others <= 0) {
    error_ =
        "sentence_task nsp needs at least two documents to draw random segments from; "
        "this input has one (use sentence_task: sop)";
    return false;
  }
  const int64_t k = static_cast<int64_t>(rng.Below(others));
  const Document& doc = k < behind ? *behind_[k] : *ahead_[k - behind + 1];
  int64_t s = static_cast<int64_t>(rng.Below(doc.sentences()));
  const int64_t begin = doc.sentence_start[s];
  while (s < doc.sentences() && doc.sentence_start[s + 1] - begin < target) ++s;
  *out = {&doc, begin, doc.sentence_start[std::min(s + 1, doc.sentences())]};
  return true;
}

// BERT's truncate_seq_pair: one token at a time from the longer side (B on a tie), from its
// front or back by a coin.
void InstanceStream::Truncate(Segment* a, Segment* b, RowRandom& rng) const {
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

void InstanceStream::Emit(const Segment& a, const Segment* b, int label) {
  int64_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = static_cast<int64_t>(lengths_.size());
    lengths_.push_back(0);
    labels_.push_back(0);
    ids_.resize(ids_.size() + length_);
    segments_.resize(segments_.size() + length_);
    boundary_.resize(boundary_.size() + length_);
  }
  int32_t* ids = SlotIds(slot);
  int8_t* segments = segments_.data() + slot * length_;
  int8_t* boundary = boundary_.data() + slot * length_;
  int k = 0;
  auto put = [&](const Segment& s, int8_t segment) {
    const int first = k;
    std::memcpy(ids + k, s.doc->ids.data() + s.begin, s.size() * sizeof(int32_t));
    std::memcpy(boundary + k, s.doc->flags.data() + s.begin, s.size());
    std::memset(segments + k, segment, s.size());
    k += static_cast<int>(s.size());
    // Truncation from the front can leave a word's tail first: it starts what is left of it.
    if (s.size() > 0) boundary[first] = 1;
    ids[k] = options_.sep_id;
    segments[k] = segment;
    boundary[k] = 1;
    ++k;
  };
  ids[k] = options_.cls_id;
  segments[k] = 0;
  boundary[k] = 1;
  ++k;
  put(a, 0);
  if (b != nullptr) put(*b, 1);
  lengths_[slot] = k;
  labels_[slot] = label;

  const size_t capacity = static_cast<size_t>(options_.shuffle_buffer);
  if (buffer_.size() < capacity) {
    buffer_.push_back(slot);
  } else if (capacity == 0) {
    ready_.push_back(slot);
  } else {
    const size_t j = shuffle_rng_.Below(capacity);
    ready_.push_back(buffer_[j]);
    buffer_[j] = slot;
  }
}

void InstanceStream::Finish() {
  for (size_t i = buffer_.size(); i > 1; --i) {
    std::swap(buffer_[i - 1], buffer_[shuffle_rng_.Below(i)]);
  }
  ready_.insert(ready_.end(), buffer_.begin(), buffer_.end());
  buffer_.clear();
}

int64_t InstanceStream::Take(int64_t max_rows, int32_t* ids, int32_t* segment_ids,
                             int32_t* boundary, int32_t* lengths, int32_t* labels) {
  const int64_t rows = std::min<int64_t>(max_rows, Ready());
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t slot = ready_.front();
    ready_.pop_front();
    const int n = lengths_[slot];
    int32_t* row_ids = ids + r * length_;
    int32_t* row_segments = segment_ids + r * length_;
    int32_t* row_boundary = boundary + r * length_;
    std::copy(SlotIds(slot), SlotIds(slot) + n, row_ids);
    std::fill(row_ids + n, row_ids + length_, 0);
    const int8_t* segments = segments_.data() + slot * length_;
    const int8_t* flags = boundary_.data() + slot * length_;
    for (int t = 0; t < n; ++t) {
      row_segments[t] = segments[t];
      row_boundary[t] = flags[t];
    }
    std::fill(row_segments + n, row_segments + length_, 0);
    std::fill(row_boundary + n, row_boundary + length_, 0);
    lengths[r] = n;
    labels[r] = labels_[slot];
    free_.push_back(slot);
  }
  return rows;
}

}  // namespace pretrain_records
