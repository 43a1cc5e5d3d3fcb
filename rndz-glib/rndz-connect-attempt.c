/* rndz-connect-attempt.c: a non-blocking TCP connect
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include "rndz-connect-attempt-private.h"
#include "rndz-source-private.h"
#include "rndz-i18n-private.h"

struct _RndzConnectAttempt
{
  GSocket *socket;
  GSource *source;
  GError *error;         /* failed at once; reported from an idle */
  RndzConnectFunc func;
  gpointer user_data;
};

static gboolean
connect_ready_cb (GSocket      *socket,
                  GIOCondition  condition,
                  gpointer      user_data)
{
  RndzConnectAttempt *attempt = user_data;
  g_autoptr(GError) error = NULL;

  if (attempt->error == NULL)
    g_socket_check_connect_result (socket, &error);
  else
    error = g_steal_pointer (&attempt->error);

  /* One shot: the callback usually frees the attempt */
  g_clear_pointer (&attempt->source, g_source_unref);
  attempt->func (socket, error, attempt->user_data);
  return G_SOURCE_REMOVE;
}

static gboolean
connect_failed_cb (gpointer user_data)
{
  RndzConnectAttempt *attempt = user_data;

  return connect_ready_cb (attempt->socket, 0, attempt);
}

RndzConnectAttempt *
rndz_connect_attempt_new (GSocket         *socket,
                          const RndzAddr  *to,
                          GMainContext    *context,
                          RndzConnectFunc  func,
                          gpointer         user_data)
{
  RndzConnectAttempt *attempt = g_new0 (RndzConnectAttempt, 1);
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;

  attempt->socket = g_object_ref (socket);
  attempt->func = func;
  attempt->user_data = user_data;

  g_socket_set_blocking (socket, FALSE);
  /* An IPv4 peer from a dual-stack socket is reached v4-mapped */
  address = rndz_addr_to_socket_address (to, g_socket_get_family (socket));
  if (address == NULL)
    attempt->error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                                          _("Address family not supported"));
  else if (g_socket_connect (socket, address, NULL, &error) ||
           g_error_matches (error, G_IO_ERROR, G_IO_ERROR_PENDING))
    {
      attempt->source = g_socket_create_source (socket, G_IO_OUT, NULL);
      g_source_set_callback (attempt->source, G_SOURCE_FUNC (connect_ready_cb), attempt, NULL);
      g_source_set_static_name (attempt->source, "[rndz] connect");
      g_source_attach (attempt->source, context);
      return attempt;
    }
  else
    attempt->error = g_steal_pointer (&error);

  attempt->source = g_idle_source_new ();
  g_source_set_callback (attempt->source, connect_failed_cb, attempt, NULL);
  g_source_set_static_name (attempt->source, "[rndz] connect failed");
  g_source_attach (attempt->source, context);
  return attempt;
}

void
rndz_connect_attempt_free (RndzConnectAttempt *attempt)
{
  rndz_source_clear (&attempt->source);
  g_clear_error (&attempt->error);
  g_object_unref (attempt->socket);
  g_free (attempt);
}
