/* rndz.h: the single public include of rndz-glib
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#define __RNDZ_H_INSIDE__

#include <rndz-glib/rndz-version.h>
#include <rndz-glib/rndz-version-macros.h>
#include <rndz-glib/rndz-types.h>
#include <rndz-glib/rndz-enum-types.h>
#include <rndz-glib/rndz-features.h>
#include <rndz-glib/rndz-auth.h>
#include <rndz-glib/rndz-identity.h>
#include <rndz-glib/rndz-dtls-channel.h>
#include <rndz-glib/rndz-socket.h>

#ifdef RNDZ_HAVE_SERVER
#include <rndz-glib/rndz-server.h>
#endif

#ifdef RNDZ_HAVE_CLIENT
#include <rndz-glib/rndz-client.h>
#endif

#undef __RNDZ_H_INSIDE__
