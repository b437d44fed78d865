// Interface of the NgramMask op: attrs, shapes, documentation. The kernel is
// in ../kernels/ngram_mask_kernel.cc, the algorithm in ../core.
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace pretrain_records {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("NgramMask")
    .Input("values: T")
    .Input("token_boundary: Tboundary")
    .Input("row_splits: int64")
    .Input("seed: int64")
    .Output("masked_values: T")
    .Output("masked_positions: int64")
    .Output("masked_lm_ids: T")
    .Output("masked_row_splits: int64")
    .Attr("T: {int32, int64}")
    .Attr("Tboundary: {bool, int32, int64}")
    .Attr("max_n: int = 3")
    .Attr("mask_ratio: float = 0.15")
    .Attr("max_predictions: int = 20")
    .Attr("favor_shorter_ngram: bool = true")
    .Attr("whole_word: bool = true")
    .Attr("special_ids: list(int) = []")
    .Attr("mask_id: int")
    .Attr("vocab_size: int")
    .Attr("mask_token_rate: float = 0.8")
    .Attr("random_token_rate: float = 0.1")
    .SetShapeFn([](InferenceContext* c) {
      // Shapes are only propagated here; the kernel validates them, so a bad shape or seed is
      // an InvalidArgumentError in eager mode and inside tf.function alike.
      ShapeHandle values = c->input(0);
      ShapeHandle splits = c->input(2);
      if (c->RankKnown(values) && c->Rank(values) == 1) {
        c->set_output(0, values);
      } else {
        c->set_output(0, c->Vector(InferenceContext::kUnknownDim));
      }
      c->set_output(1, c->Vector(InferenceContext::kUnknownDim));
      c->set_output(2, c->Vector(InferenceContext::kUnknownDim));
      DimensionHandle rows_plus_one = c->RankKnown(splits) && c->Rank(splits) == 1
                                          ? c->Dim(splits, 0)
                                          : c->UnknownDim();
      if (c->ValueKnown(rows_plus_one) && c->Value(rows_plus_one) == 0) {
        rows_plus_one = c->MakeDim(2);  // one sequence
      }
      c->set_output(3, c->Vector(rows_plus_one));
      return absl::OkStatus();
    })
    .Doc(R"doc(
ALBERT-style n-gram masking (https://arxiv.org/abs/1909.11942) of token rows.

values: token ids of all rows, concatenated.
token_boundary: 1 where a token starts a word; same shape as values.
row_splits: row boundaries in values ([B + 1]); empty for a single row.
seed: [2] stateless seed; row i draws from (seed[0], seed[1] + i).
masked_values: values after 80/10/10 replacement of the chosen positions.
masked_positions: chosen positions within each row, ascending, concatenated.
masked_lm_ids: original ids at those positions.
masked_row_splits: row boundaries of masked_positions and masked_lm_ids.
)doc");

}  // namespace pretrain_records
