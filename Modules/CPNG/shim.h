#ifndef R2I_CPNG_SHIM_H
#define R2I_CPNG_SHIM_H
// libpng 1.6 simplified API (png_image_*); pkg-config "libpng".
#include <png.h>
#endif
