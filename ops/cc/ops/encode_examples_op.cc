// Interface of the EncodeExamples op. The kernel is in
// ../kernels/encode_examples_kernel.cc, the encoder in ../core.
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace pretrain_records {

using ::tensorflow::shape_inference::InferenceContext;

REGISTER_OP("EncodeExamples")
    .Input("ints: Nint * Tint")
    .Input("floats: Nfloat * float")
    .Output("records: string")
    .Attr("int_names: list(string)")
    .Attr("float_names: list(string)")
    .Attr("tfrecord_frame: bool = false")
    .Attr("Nint: int >= 1")
    .Attr("Nfloat: int >= 0")
    .Attr("Tint: {int32, int64}")
    .SetShapeFn([](InferenceContext* c) {
      // Only propagated; the kernel validates shapes and names.
      auto rows = c->RankKnown(c->input(0)) && c->Rank(c->input(0)) >= 1
                      ? c->Dim(c->input(0), 0)
                      : c->UnknownDim();
      c->set_output(0, c->Vector(rows));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Serializes rows as tf.train.Example records, byte for byte what
SerializeToString(deterministic=True) gives.

ints: [rows, width] int features (written as Int64List).
floats: [rows, width] float features (written as FloatList).
int_names: the name of each int feature.
float_names: the name of each float feature.
tfrecord_frame: frame each record as in a TFRecord file (length, masked CRC-32C of
  the length, the Example, its masked CRC-32C), ready to be concatenated into one.
records: row r's serialized Example.
)doc");

}  // namespace pretrain_records
