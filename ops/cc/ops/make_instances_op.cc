// Interface of the MakeInstances op: attrs, shapes, documentation. The kernel is in
// ../kernels/make_instances_kernel.cc, the algorithm in ../core/instance_maker.h.
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace pretrain_records {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;

REGISTER_OP("MakeInstances")
    .Input("token_ids: int32")
    .Input("word_starts: int8")
    .Input("sentence_lengths: int32")
    .Input("document_sentences: int32")
    .Input("seed: int64")
    .Input("documents: int64")
    .Output("input_ids: int32")
    .Output("segment_ids: int32")
    .Output("token_boundary: int32")
    .Output("lengths: int32")
    .Output("labels: int32")
    .Output("own_tokens: int32")
    .Output("documents_of_rows: int32")
    .Attr("max_seq_length: int")
    .Attr("short_seq_prob: float")
    .Attr("sentence_task: {'nsp', 'sop', 'none'}")
    .Attr("cls_id: int")
    .Attr("sep_id: int")
    .SetShapeFn([](InferenceContext* c) {
      // Input shapes are only propagated here; the kernel validates them, so a bad shape is an
      // InvalidArgumentError in eager mode and inside tf.function alike.
      int64_t length = 0;
      TF_RETURN_IF_ERROR(c->GetAttr("max_seq_length", &length));
      const DimensionHandle rows = c->UnknownDim();
      const DimensionHandle columns = length >= 0 ? c->MakeDim(length) : c->UnknownDim();
      for (int i = 0; i < 3; ++i) c->set_output(i, c->Matrix(rows, columns));
      c->set_output(3, c->Vector(rows));
      c->set_output(4, c->Vector(rows));
      c->set_output(5, c->Vector(rows));
      c->set_output(6, c->Vector(rows));
      return absl::OkStatus();
    })
    .Doc(R"doc(
BERT/ALBERT sentence-pair instances of a chunk of tokenized documents, as padded
rows in document order (https://arxiv.org/abs/1810.04805 for BERT's NSP, and
ALBERT's SOP: https://arxiv.org/abs/1909.11942).

Follows BERT's create_instances_from_document: a target length (short_seq_prob),
a random A/B split point, truncation from the longer side at a random end. With
nsp, B is the next text (label 0) or text from another document of the chunk
(label 1); with sop, A and B are swapped with p = 0.5 (label 1) and a
single-sentence chunk is split inside the sentence; with none, one segment.
Documents without tokens are skipped. Stateless: document d draws from a stream
keyed by (seed[0], seed[1], d), so the same chunk and seed give the same rows.

token_ids: [T] the tokens of every sentence of every document, concatenated.
word_starts: [T] 1 where a token starts a word.
sentence_lengths: [S] tokens per sentence (0 allowed).
document_sentences: [D] sentences per document (0 allowed).
seed: [2] stateless seed.
documents: [2] the range of documents to make instances of, or [] for all; every
  document of the chunk is NSP's pool of random segments.
input_ids: [N, max_seq_length] [CLS] A [SEP] B [SEP] (or [CLS] A [SEP]), then 0s.
segment_ids: [N, max_seq_length] 0 for [CLS] A [SEP], 1 for B [SEP], 0 for padding.
token_boundary: [N, max_seq_length] 1 where a token starts a word (the first token
  of each segment does), 0 for padding.
lengths: [N] tokens of each row before padding.
labels: [N] NSP: 1 when B is random; SOP: 1 when A and B are swapped; none: 0.
own_tokens: [N] the tokens of each row from its own document: A, and B unless it is
  NSP's random segment from another document ([CLS]/[SEP] not counted). Summed over
  the rows, at most the tokens of the documents in range; the rest was dropped.
documents_of_rows: [N] the index in the chunk (of document_sentences) of the document
  each row's A comes from.
max_seq_length: L, [CLS] and [SEP]s included.
short_seq_prob: probability of a shorter target length, uniform in [2, L - 3]
  (L - 2 for none), as BERT.
sentence_task: 'nsp', 'sop' or 'none'.
cls_id: the [CLS] id.
sep_id: the [SEP] id.
)doc");

}  // namespace pretrain_records
