// The per-inference fast path from Swift without uniffi's serialisation (bindings/src/fast_c.rs): inputs and
// caller-owned outputs as pointers the Swift layer holds for the call. A failed call returns 1 and keeps its error,
// which the Swift layer then takes through uniffi (`takeFastPathError()`), so errors arrive as from every call. Not a
// public C API: the Swift layer is its only caller.
#pragma once
#include <stdint.h>
#include <stddef.h>

typedef struct OagInput {
    uint32_t index;                 // the model input's position, or UINT32_MAX: the input is named by `name`
    const uint8_t *_Nullable name;  // UTF-8, `name_len` bytes (only read when `index` is UINT32_MAX)
    size_t name_len;
    uint32_t element_type;          // ElementType's declaration order (elementTypeCode in the generated API)
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

// 0 on success (`*result` holds the allocated outputs, or null when every output had a buffer); 1 on failure (the
// error waits for takeFastPathError() on this thread). `engine` and `cancel` are the fast handles of objects the
// caller keeps alive; `timeout_us` is microseconds from now, 0 when passed already, negative for none.
int32_t openautoglm_fast_run(int64_t engine, const OagInput *_Nullable inputs, size_t input_count,
                             const OagOutputBuffer *_Nullable outputs, size_t output_count, int32_t priority,
                             int64_t timeout_us, int64_t cancel, OagResult *_Nullable *_Nonnull result);
// Output `index` of a result (false when that output went into a caller buffer); pointers live until the free.
_Bool openautoglm_fast_result_tensor(const OagResult *_Nonnull result, size_t index, OagTensor *_Nonnull tensor);
void openautoglm_fast_result_free(OagResult *_Nullable result);
