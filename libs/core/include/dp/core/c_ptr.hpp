#pragma once

#include <memory>

namespace dp {

// A unique_ptr that frees a C library's object with that library's own function, e.g.
// c_ptr<BIO, BIO_free_all>. The function is part of the type, so the pointer stays one word.
template <class T, void (*Free)(T*)>
struct c_deleter {
  void operator()(T* p) const noexcept { Free(p); }
};
template <class T, void (*Free)(T*)>
using c_ptr = std::unique_ptr<T, c_deleter<T, Free>>;

}  // namespace dp
