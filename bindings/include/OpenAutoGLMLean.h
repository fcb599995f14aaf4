// The per-inference call from Swift without uniffi's serialisation (bindings/src/lean.rs): inputs and caller-owned
// outputs as pointers the Swift layer holds for the call. Errors come back as the same serialised error uniffi uses,
// lifted by the generated Swift code. Not a public C API: the Swift layer is its only caller.
#pragma once
#include <stdint.h>
#include <stddef.h>

typedef struct OagInput {
    uint32_t index;          // the model input's position
    uint32_t element_type;   // ElementType's declaration order
    const uint8_t *_Nullable data;
    size_t len;
    const int64_t *_Nullable shape;
    size_t rank;
} OagInput;

typedef struct OagOutputBuffer {
    uint8_t *_Nullable data; // null: the engine allocates this output
    size_t len;
} OagOutputBuffer;

typedef struct OagTensor {
    uint32_t element_type;
    const int64_t *_Nullable shape;
    size_t rank;
    const uint8_t *_Nullable data;
    size_t len;
} OagTensor;

typedef struct OagResult OagResult;

// 0 on success (`*result` holds the allocated outputs, or null when every output had a buffer); otherwise `*error`
// holds the serialised error. `engine` and `cancel` are the fast handles of objects the caller keeps alive.
int32_t openautoglm_lean_run(int64_t engine, const OagInput *_Nullable inputs, size_t input_count,
                             const OagOutputBuffer *_Nullable outputs, size_t output_count, int32_t priority,
                             int64_t timeout_us, int64_t cancel, OagResult *_Nullable *_Nonnull result,
                             RustBuffer *_Nonnull error);
// Output `index` of a result (false when that output went into a caller buffer); pointers live until the free.
_Bool openautoglm_lean_result_tensor(const OagResult *_Nonnull result, size_t index, OagTensor *_Nonnull tensor);
void openautoglm_lean_result_free(OagResult *_Nullable result);
