// Thin TensorFlow adapter over the C++ instance maker: reads attrs once, checks
// tensor ranks, makes the chunk's instances and writes them into the outputs.
#include <string>
#include <vector>

#include "../core/instance_maker.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/platform/errors.h"

namespace pretrain_records {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
namespace errors = ::tensorflow::errors;

class MakeInstancesOp : public OpKernel {
 public:
  explicit MakeInstancesOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    float short_seq_prob = 0;
    std::string task;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("max_seq_length", &options_.max_seq_length));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("short_seq_prob", &short_seq_prob));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("sentence_task", &task));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("cls_id", &options_.cls_id));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("sep_id", &options_.sep_id));
    options_.short_seq_prob = short_seq_prob;
    OP_REQUIRES(ctx, instances::ParseSentenceTask(task, &options_.task),
                errors::InvalidArgument("sentence_task must be nsp, sop or none, got ", task));
    const std::string problem = instances::ValidateOptions(options_);
    OP_REQUIRES(ctx, problem.empty(), errors::InvalidArgument(problem));
  }

  void Compute(OpKernelContext* ctx) override {
    static constexpr const char* kNames[] = {"token_ids", "word_starts", "sentence_lengths",
                                             "document_sentences"};
    for (int i = 0; i < 4; ++i) {
      OP_REQUIRES(ctx, ctx->input(i).dims() == 1,
                  errors::InvalidArgument(kNames[i], " must be a vector, got shape ",
                                          ctx->input(i).shape().DebugString()));
    }
    const Tensor& seed = ctx->input(4);
    OP_REQUIRES(
        ctx, seed.dims() == 1 && seed.NumElements() == 2,
        errors::InvalidArgument("seed must have shape [2], got ", seed.shape().DebugString()));
    auto view = [&](int i, auto type) {
      using T = decltype(type);
      const Tensor& t = ctx->input(i);
      return instances::ArrayView<T>(t.flat<T>().data(), t.NumElements());
    };
    const Tensor& range = ctx->input(5);
    OP_REQUIRES(ctx, range.dims() == 1 && (range.NumElements() == 2 || range.NumElements() == 0),
                errors::InvalidArgument("documents must have shape [2] or [0], got ",
                                        range.shape().DebugString()));
    instances::Chunk chunk{view(0, int32_t{}), view(1, int8_t{}), view(2, int32_t{}),
                           view(3, int32_t{})};
    if (range.NumElements() == 2) {
      chunk.first_document = range.flat<int64_t>()(0);
      chunk.end_document = range.flat<int64_t>()(1);
    }
    const auto seed_flat = seed.flat<int64_t>();
    std::vector<instances::Instance> planned;
    std::string error;
    const bool planned_ok =
        instances::PlanInstances(chunk, options_, static_cast<uint64_t>(seed_flat(0)),
                                 static_cast<uint64_t>(seed_flat(1)), &planned, &error);
    OP_REQUIRES(ctx, planned_ok, errors::InvalidArgument(error));

    const int64_t rows = static_cast<int64_t>(planned.size());
    Tensor* out[7] = {};
    for (int i = 0; i < 7; ++i) {
      const TensorShape shape =
          i < 3 ? TensorShape({rows, options_.max_seq_length}) : TensorShape({rows});
      OP_REQUIRES_OK(ctx, ctx->allocate_output(i, shape, &out[i]));
    }
    instances::WriteRows(chunk, options_, planned, out[0]->flat<int32_t>().data(),
                         out[1]->flat<int32_t>().data(), out[2]->flat<int32_t>().data(),
                         out[3]->flat<int32_t>().data(), out[4]->flat<int32_t>().data(),
                         out[5]->flat<int32_t>().data(), out[6]->flat<int32_t>().data());
  }

 private:
  instances::InstanceOptions options_;
};

REGISTER_KERNEL_BUILDER(Name("MakeInstances").Device(::tensorflow::DEVICE_CPU), MakeInstancesOp);

}  // namespace pretrain_records
