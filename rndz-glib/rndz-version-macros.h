/* rndz-version-macros.h: visibility and availability macros
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(__RNDZ_H_INSIDE__) && !defined(RNDZ_COMPILATION)
#error "Only <rndz-glib/rndz.h> can be included directly."
#endif

#include <glib.h>

#ifndef _RNDZ_EXTERN
# define _RNDZ_EXTERN __attribute__((visibility ("default"))) extern
#endif

#define RNDZ_AVAILABLE_IN_ALL _RNDZ_EXTERN
#define RNDZ_AVAILABLE_IN_1_0 _RNDZ_EXTERN
