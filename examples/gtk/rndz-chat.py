#!/usr/bin/python3
# rndz-chat.py: a two-peer chat over a TCP rendezvous, in GTK 4
#
# SPDX-License-Identifier: MIT
#
#   rndz-chat.py --id ID --server HOST:PORT [--peer PEER]
#                [--identity FILE] [--peer-fingerprint FP] [--insecure]
#
# Without --peer the chat *listens*: it registers as ID with the rendezvous
# server and waits for a peer. With --peer it *reaches* the peer PEER
# through the server. Either way the two end up with a TCP connection,
# straight to each other or through the server's relay, over which each
# line typed is sent as one UTF-8 line.
#
# The connection is TLS 1.3 (a Gio.TlsConnection) unless --insecure: each
# peer has an identity, a key and a certificate (Rndz.Identity; from FILE,
# created when missing, or a fresh one), and its fingerprint travels with
# the rendezvous. Each side checks that the other holds the key for the
# fingerprint it announced; --peer-fingerprint pins the one we expect.
# Compare the fingerprint the window shows with the one your peer sees as
# their own (hover over "You") to know nobody sits in between.
#
# The window shows who is who, the peer's fingerprint, how the
# registration with the server fares (the client's "state" and
# "last-pong" properties) and the path to the peer. Everything is
# asynchronous: the rendezvous, the handshake, reading and writing run in
# GTK's main loop, and the window never blocks.
#
# It prints a line on standard output when it has registered ("Registered
# as ID on port P"), with its own fingerprint ("Fingerprint: FP"), when a
# peer is connected ("Connected to PEER at ADDRESS") and when it saved a
# screenshot ("Window shows the peer's fingerprint FP" first, if a label
# in the window does), so that scripts can follow it.
# Two options make it scriptable, for tests and screenshots:
#   --auto-message TEXT   send TEXT as soon as the peer is connected
#   --screenshot FILE     once a message has arrived (and TEXT has been
#                         sent), save the window as a PNG in FILE and quit;
#                         errors then quit with exit status 1
#
# Needs PyGObject with GTK 4 (Debian: python3-gi, gir1.2-gtk-4.0) and the
# library's typelib. From a build tree:
#
#   GI_TYPELIB_PATH=_build/rndz-glib LD_LIBRARY_PATH=_build/rndz-glib \
#       /usr/bin/python3 examples/gtk/rndz-chat.py --id alice --server 127.0.0.1:8888

import ctypes
import signal
import sys
import unicodedata

import gi

gi.require_version('GLib', '2.0')
gi.require_version('Gio', '2.0')
gi.require_version('Gdk', '4.0')
gi.require_version('Gtk', '4.0')
gi.require_version('Pango', '1.0')
gi.require_version('Rndz', '1.0')

from gi.repository import GLib, GObject, Gio, Gdk, Gtk, Pango, Rndz  # noqa: E402

# Replace with your own reverse-DNS id when you copy this
APP_ID = 'org.example.RndzChat'

# A line longer than this is not a chat message: the peer is misbehaving.
# Without such a bound, a peer that never sends a newline would make us
# buffer without end.
MAX_LINE_BYTES = 16 * 1024
# Frames a screenshot waits for, when the first has nothing drawn yet
SCREENSHOT_TRIES = 10

STATE_TEXT = {
    Rndz.ClientState.IDLE: 'not registered',
    Rndz.ClientState.REGISTERING: 'registering…',
    Rndz.ClientState.REGISTERED: 'registered',
    Rndz.ClientState.RECONNECTING: 'reconnecting…',
}

CSS = b'''
.bubble {
  border-radius: 12px;
  padding: 6px 12px;
}
.bubble.outgoing {
  background-color: @theme_selected_bg_color;
  color: @theme_selected_fg_color;
}
.bubble.incoming {
  background-color: alpha(currentColor, 0.1);
}
.chat-info {
  padding: 6px 12px;
}
.fingerprint {
  font-family: monospace;
}
'''


def show_fingerprint(fingerprint):
    """A fingerprint as people compare it: groups of four, two lines."""
    groups = [fingerprint[i:i + 4] for i in range(0, len(fingerprint), 4)]
    half = len(groups) // 2
    return ' '.join(groups[:half]) + '\n' + ' '.join(groups[half:])


def labels(widget):
    """Every Gtk.Label in a widget tree."""
    if isinstance(widget, Gtk.Label):
        yield widget
    child = widget.get_first_child()
    while child is not None:
        yield from labels(child)
        child = child.get_next_sibling()


def is_cancelled(error):
    return error.matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED)


class LineChannel(GObject.Object):
    """Lines of UTF-8 text over a Gio.IOStream, both ways.

    The stream is a Gio.TlsConnection, or a Gio.SocketConnection when the
    chat runs --insecure: both have an input and an output stream.

    Reads in chunks and splits them into lines (bounded by MAX_LINE_BYTES),
    and writes one line at a time: a GIO stream allows one pending
    operation per direction, so lines typed quickly wait in a queue.
    """

    __gsignals__ = {
        # A line arrived, without its newline
        'line-received': (GObject.SignalFlags.RUN_LAST, None, (str,)),
        # Everything queued so far has been written
        'drained': (GObject.SignalFlags.RUN_LAST, None, ()),
        # The peer closed the connection (message is None) or it failed
        'closed': (GObject.SignalFlags.RUN_LAST, None, (GObject.TYPE_PYOBJECT,)),
    }

    def __init__(self, connection, cancellable):
        super().__init__()
        self.connection = connection
        self.cancellable = cancellable
        self.received = b''
        self.outbox = []
        self.writing = False
        self.is_closed = False

    def start(self):
        self.connection.get_input_stream().read_bytes_async(
            4096, GLib.PRIORITY_DEFAULT, self.cancellable, self.on_read)

    def send(self, text):
        # A newline would split the message in two on the other side
        line = text.replace('\n', ' ') + '\n'
        self.outbox.append(line.encode())
        if not self.writing:
            self.write_next()

    def close(self):
        if not self.is_closed:
            self.is_closed = True
            # Closing a socket does not block; it may fail if it is gone
            try:
                self.connection.close(None)
            except GLib.Error:
                pass

    def write_next(self):
        if not self.outbox or self.is_closed:
            self.writing = False
            self.emit('drained')
            return

        self.writing = True
        data = GLib.Bytes.new(self.outbox[0])
        self.connection.get_output_stream().write_bytes_async(
            data, GLib.PRIORITY_DEFAULT, self.cancellable, self.on_written)

    def on_written(self, stream, result):
        try:
            written = stream.write_bytes_finish(result)
        except GLib.Error as e:
            self.fail(e)
            return

        # A write may be partial: send the rest next
        self.outbox[0] = self.outbox[0][written:]
        if not self.outbox[0]:
            self.outbox.pop(0)
        self.write_next()

    def on_read(self, stream, result):
        try:
            data = stream.read_bytes_finish(result).get_data()
        except GLib.Error as e:
            self.fail(e)
            return

        if not data:
            self.is_closed = True
            self.emit('closed', None)
            return

        self.received += data
        *lines, self.received = self.received.split(b'\n')
        for line in lines:
            self.emit('line-received', line.decode(errors='replace'))
        if len(self.received) > MAX_LINE_BYTES:
            self.fail(GLib.Error('The peer sent a line that is too long'))
            return

        if not self.is_closed:
            self.start()

    def fail(self, error):
        if is_cancelled(error) or self.is_closed:
            return
        self.close()
        self.emit('closed', error.message)


class ChatWindow(Gtk.ApplicationWindow):
    """One chat: a rendezvous client, one peer, and the window that shows them."""

    def __init__(self, application, options):
        super().__init__(application=application, default_width=460, default_height=520)
        self.options = options
        self.cancellable = Gio.Cancellable()
        self.channel = None
        self.peer_requests = {}     # peer id -> address the server reported
        self.received_any = False
        self.peer_fingerprint = None
        self.auto_message_sent = options.auto_message is None
        self.screenshot_taken = False
        self.screenshot_tries = 0

        self.build_ui()

        # The client's sockets and timers belong to the main context that is
        # the thread-default one now: GTK's.
        self.client = Rndz.Client.new(options.id, [options.server])
        if options.identity is not None:
            # Set before listening: a listener's fingerprint goes to the
            # server with its registration
            self.client.props.identity = options.identity
            self.info_values['you'].set_tooltip_text(
                'Your fingerprint:\n' + show_fingerprint(options.identity.get_fingerprint()))
            print(f'Fingerprint: {options.identity.get_fingerprint()}', flush=True)
        self.client.connect('notify::state', self.on_registration_changed)
        self.client.connect('notify::last-pong', self.on_registration_changed)
        self.client.connect('peer-request', self.on_peer_request)
        self.on_registration_changed()

        if options.peer is None:
            if options.secure and options.peer_fingerprint is not None:
                # Only that peer gets an answer
                self.client.props.allowed_fingerprints = [options.peer_fingerprint]
            self.set_peer_text('waiting for a peer…')
            self.client.listen_tcp_async(self.cancellable, self.on_listening)
        elif options.secure:
            self.set_peer_text(f'{options.peer} (reaching…)')
            self.client.connect_tls_async(options.peer, options.peer_fingerprint,
                                          self.cancellable, self.on_connected)
        else:
            self.set_peer_text(f'{options.peer} (reaching…)')
            self.client.connect_tcp_async(options.peer, self.cancellable, self.on_connected)

        self.connect('close-request', lambda window: self.stop() or False)

    # The user interface

    def build_ui(self):
        peer = self.options.peer
        title = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, valign=Gtk.Align.CENTER)
        title.append(Gtk.Label(label='rndz chat', css_classes=['title']))
        how = 'encrypted' if self.options.secure else 'not encrypted'
        title.append(Gtk.Label(label=f'as {self.options.id}, {how}', css_classes=['subtitle']))
        self.set_titlebar(Gtk.HeaderBar(title_widget=title))

        # Who and how: a two-column grid of labels
        info = Gtk.Grid(column_spacing=12, row_spacing=4, css_classes=['chat-info'])
        self.info_values = {}
        rows = [('you', 'You'), ('peer', 'Peer'), ('fingerprint', 'Fingerprint'),
                ('server', 'Server'), ('path', 'Path')]
        for row, (key, name) in enumerate(rows):
            info.attach(Gtk.Label(label=name, xalign=0, yalign=0, css_classes=['dim-label']),
                        0, row, 1, 1)
            value = Gtk.Label(xalign=0, hexpand=True, ellipsize=Pango.EllipsizeMode.END)
            info.attach(value, 1, row, 1, 1)
            self.info_values[key] = value
        # The peer's fingerprint, for people to compare: whole, selectable
        fingerprint = self.info_values['fingerprint']
        fingerprint.set_ellipsize(Pango.EllipsizeMode.NONE)
        fingerprint.set_selectable(True)
        fingerprint.add_css_class('fingerprint')
        fingerprint.set_label('—' if self.options.secure else 'none: not encrypted')
        self.info_values['you'].set_label(self.options.id)
        self.info_values['path'].set_label('—' if peer is None else 'not connected yet')

        # The conversation
        self.messages = Gtk.ListBox(selection_mode=Gtk.SelectionMode.NONE,
                                    show_separators=False)
        self.scrolled = Gtk.ScrolledWindow(vexpand=True, child=self.messages,
                                           hscrollbar_policy=Gtk.PolicyType.NEVER)

        # Typing
        self.entry = Gtk.Entry(hexpand=True, placeholder_text='Message', sensitive=False)
        self.entry.connect('activate', self.on_send)
        self.send_button = Gtk.Button(label='Send', sensitive=False,
                                      css_classes=['suggested-action'])
        self.send_button.connect('clicked', self.on_send)
        composer = Gtk.Box(spacing=6, margin_start=6, margin_end=6,
                           margin_top=6, margin_bottom=6)
        composer.append(self.entry)
        composer.append(self.send_button)

        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL)
        box.append(info)
        box.append(Gtk.Separator())
        box.append(self.scrolled)
        box.append(Gtk.Separator())
        box.append(composer)
        self.set_child(box)

    def add_row(self, text, kind):
        """Adds a line to the conversation: 'incoming', 'outgoing' or 'event'."""
        label = Gtk.Label(label=text, wrap=True, xalign=0, selectable=True,
                          margin_start=12, margin_end=12, margin_top=4, margin_bottom=4)
        if kind == 'event':
            label.set_halign(Gtk.Align.CENTER)
            label.set_justify(Gtk.Justification.CENTER)
            label.add_css_class('dim-label')
        else:
            label.set_halign(Gtk.Align.END if kind == 'outgoing' else Gtk.Align.START)
            label.add_css_class('bubble')
            label.add_css_class(kind)
        self.messages.append(Gtk.ListBoxRow(child=label, activatable=False))

        # Scroll to the new line once the list has grown
        GLib.idle_add(self.scroll_to_end)

    def scroll_to_end(self):
        adjustment = self.scrolled.get_vadjustment()
        adjustment.set_value(adjustment.get_upper())
        return GLib.SOURCE_REMOVE

    def set_peer_text(self, text):
        self.info_values['peer'].set_label(text)

    def set_chatting(self, chatting):
        if not chatting:
            # Take the focus away first: GTK 4.8 warns when a focused entry
            # becomes insensitive
            self.set_focus(None)
        self.entry.set_sensitive(chatting)
        self.send_button.set_sensitive(chatting)
        if chatting:
            self.entry.grab_focus()

    def report_error(self, what, error):
        self.add_row(f'{what}: {error}', 'event')
        print(f'rndz-chat: {what}: {error}', file=sys.stderr)
        # Unattended (under a test), an error ends the run
        if self.options.screenshot is not None:
            self.get_application().quit_with_status(1)

    # Registration with the server

    def on_registration_changed(self, *args):
        state = self.client.props.state
        last_pong = self.client.props.last_pong     # µs since the epoch, or 0
        if self.options.peer is not None:
            # A connector does not register: the server is only asked once
            text = f'{self.options.server}, for the rendezvous only'
        else:
            text = f'{self.options.server}, {STATE_TEXT[state]}'
            if last_pong:
                time = GLib.DateTime.new_from_unix_local(last_pong // 1000000)
                text += f', last answer {time.format("%H:%M:%S")}'
        self.info_values['server'].set_label(text)

    def on_peer_request(self, client, peer_id, address):
        # Emitted before the peer arrives: the server tells us where it saw
        # the peer, and the library has already opened our NAT towards it.
        self.peer_requests[peer_id] = address.to_string()

    # Listening: register, then accept peers

    def on_listening(self, client, result):
        try:
            client.listen_tcp_finish(result)
        except GLib.Error as e:
            if not is_cancelled(e):
                self.report_error('Cannot register', e.message)
            return

        self.add_row(f'Registered as {client.props.id}; waiting for a peer', 'event')
        print(f'Registered as {client.props.id} on port {client.props.local_port}', flush=True)
        self.accept()

    def accept(self):
        if self.options.secure:
            self.client.accept_tls_async(self.cancellable, self.on_accepted)
        else:
            self.client.accept_async(self.cancellable, self.on_accepted)

    def on_accepted(self, client, result):
        try:
            if self.options.secure:
                connection, peer_id = client.accept_tls_finish(result)
            else:
                connection, peer_id = client.accept_finish(result)
        except GLib.Error as e:
            # stop() makes a pending accept fail with CLOSED
            if not is_cancelled(e) and not e.matches(Gio.io_error_quark(), Gio.IOErrorEnum.CLOSED):
                self.report_error('Cannot accept a peer', e.message)
            return

        # Keep accepting, so that a second peer hears "no" at once instead
        # of waiting in the library's queue
        self.accept()

        if self.channel is not None:
            self.add_row(f'{peer_id} tried to join; this chat has room for two', 'event')
            connection.close(None)
            return

        self.start_chat(connection, peer_id, self.peer_requests.pop(peer_id, None))

    # Reaching a peer

    def on_connected(self, client, result):
        try:
            if self.options.secure:
                connection = client.connect_tls_finish(result)
            else:
                connection = client.connect_tcp_finish(result)
        except GLib.Error as e:
            if not is_cancelled(e):
                # For example Rndz.Error.PEER_NOT_FOUND: no server knows the
                # peer, or Rndz.Error.IDENTITY_MISMATCH: not the one pinned
                self.set_peer_text(f'{self.options.peer} (unreachable)')
                self.info_values['path'].set_label('—')
                self.report_error(f'Cannot reach {self.options.peer}', e.message)
            return

        self.start_chat(connection, self.options.peer, None)

    # Chatting

    def start_chat(self, connection, peer_id, server_saw):
        # TLS runs over the connection the rendezvous made: that one knows
        # the addresses and the path
        if isinstance(connection, Gio.TlsConnection):
            base = connection.props.base_io_stream
            # The library checked that the peer holds the key of this
            # certificate, and that it is the one the rendezvous announced
            self.peer_fingerprint = Rndz.fingerprint_from_certificate(
                connection.get_peer_certificate())
            self.info_values['fingerprint'].set_label(show_fingerprint(self.peer_fingerprint))
        else:
            base = connection
        remote = base.get_remote_address().to_string()
        self.set_peer_text(f'{peer_id} at {remote}')

        # The library says which way the connection goes: straight to the
        # peer ("direct", or "local" over a network the two share), or
        # through the server's relay ("relayed"). The listener can also
        # compare the peer's address with the one the server saw; they
        # differ when, say, a NAT rewrote it again.
        path = Rndz.socket_get_path(base.get_socket()).value_nick
        if path != 'direct' or server_saw is None or server_saw == remote:
            self.info_values['path'].set_label(path)
        else:
            self.info_values['path'].set_label(f'direct (the server saw {server_saw})')

        self.channel = LineChannel(connection, self.cancellable)
        self.channel.connect('line-received', self.on_line_received)
        self.channel.connect('drained', self.on_drained)
        self.channel.connect('closed', self.on_channel_closed, peer_id)
        self.channel.start()

        if self.options.peer is None:
            self.add_row(f'{peer_id} joined', 'event')
        else:
            self.add_row(f'Connected to {peer_id}', 'event')
        print(f'Connected to {peer_id} at {remote}', flush=True)
        self.set_chatting(True)

        if self.options.auto_message is not None:
            self.send(self.options.auto_message)

    def send(self, text):
        self.channel.send(text)
        self.add_row(text, 'outgoing')

    def on_send(self, widget):
        text = self.entry.get_text().strip()
        if text and self.channel is not None:
            self.send(text)
            self.entry.set_text('')

    def on_line_received(self, channel, text):
        self.add_row(text, 'incoming')
        self.received_any = True
        self.maybe_take_screenshot()

    def on_drained(self, channel):
        self.auto_message_sent = True
        self.maybe_take_screenshot()

    def on_channel_closed(self, channel, error, peer_id):
        self.channel = None
        self.set_chatting(False)
        self.info_values['path'].set_label('—')
        if self.options.secure:
            self.info_values['fingerprint'].set_label('—')
        if error is None:
            self.set_peer_text(f'{peer_id} (left)')
            self.add_row(f'{peer_id} left', 'event')
        else:
            self.set_peer_text(f'{peer_id} (connection lost)')
            self.report_error(f'Lost {peer_id}', error)

        if self.options.peer is None:
            self.set_peer_text(self.info_values['peer'].get_label() + '; waiting for a peer…')

    # Screenshots, for tests and documentation

    def maybe_take_screenshot(self):
        if (self.options.screenshot is None or self.screenshot_taken
                or not self.received_any or not self.auto_message_sent):
            return
        self.screenshot_taken = True
        self.screenshot_after_paint()

    def screenshot_after_paint(self):
        # The new message is in the list, but not laid out and drawn yet:
        # wait until the next frame has been painted.
        frame_clock = self.get_frame_clock()
        handler = None

        def on_after_paint(clock):
            clock.disconnect(handler)
            GLib.idle_add(self.save_screenshot)

        handler = frame_clock.connect('after-paint', on_after_paint)
        self.queue_draw()

    def save_screenshot(self):
        # What a test cannot see in the PNG: that the peer's fingerprint is
        # on the screen, in full
        shown = self.peer_fingerprint is not None and any(
            label.get_mapped() and label.get_label() == show_fingerprint(self.peer_fingerprint)
            for label in labels(self))
        if shown:
            print(f"Window shows the peer's fingerprint {self.peer_fingerprint}", flush=True)
        if save_png(self, self.options.screenshot):
            print(f'Saved the window to {self.options.screenshot}', flush=True)
            self.get_application().quit_with_status(0)
        elif self.screenshot_tries < SCREENSHOT_TRIES:
            # On a loaded machine the frame may come before the window has
            # anything to draw: the next one
            self.screenshot_tries += 1
            self.screenshot_after_paint()
        else:
            self.report_error('Cannot save the screenshot', self.options.screenshot)
        return GLib.SOURCE_REMOVE

    # Shutting down

    def stop(self):
        """Cancels what is in progress, closes the chat, says bye to the server."""
        self.cancellable.cancel()
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        self.client.stop()



def valid_id(peer_id):
    size = len(peer_id.encode())
    return 1 <= size <= 64 and not any(unicodedata.category(ch) == 'Cc' for ch in peer_id)


def save_png(widget, path):
    """Renders a widget, as it is now, into a PNG file.

    In GTK 4 a widget is drawn into a Gtk.Snapshot, which makes a tree of
    render nodes, and the renderer of its window turns that into a texture:

        snapshot = Gtk.Snapshot.new()
        Gtk.WidgetPaintable.new(widget).snapshot(snapshot, width, height)
        node = snapshot.to_node()
        texture = widget.get_native().get_renderer().render_texture(node, None)
        texture.save_to_png(path)

    A Gsk.RenderNode is not a GObject but a "fundamental" type of its own,
    and PyGObject 3.42 (Debian 12's) cannot pass one between calls; later
    releases can. So the calls that touch the node go through ctypes here.
    """
    width, height = widget.get_width(), widget.get_height()
    snapshot = Gtk.Snapshot.new()
    Gtk.WidgetPaintable.new(widget).snapshot(snapshot, width, height)
    renderer = widget.get_native().get_renderer()

    gtk = ctypes.CDLL('libgtk-4.so.1')
    gtk.gtk_snapshot_to_node.restype = ctypes.c_void_p
    gtk.gtk_snapshot_to_node.argtypes = [ctypes.c_void_p]
    gtk.gsk_renderer_render_texture.restype = ctypes.c_void_p
    gtk.gsk_renderer_render_texture.argtypes = [ctypes.c_void_p] * 3
    gtk.gdk_texture_save_to_png.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    gtk.gsk_render_node_unref.argtypes = [ctypes.c_void_p]
    gtk.g_object_unref.argtypes = [ctypes.c_void_p]

    node = gtk.gtk_snapshot_to_node(c_pointer(snapshot))
    if not node:
        return False    # nothing drawn: the window is not shown
    texture = gtk.gsk_renderer_render_texture(c_pointer(renderer), node, None)
    saved = gtk.gdk_texture_save_to_png(texture, path.encode())
    gtk.g_object_unref(texture)
    gtk.gsk_render_node_unref(node)
    return bool(saved)


def c_pointer(obj):
    """The C pointer of a PyGObject object, for ctypes."""
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(obj.__gpointer__, None)


class Options:
    def __init__(self, options):
        def string(name):
            value = options.lookup_value(name, GLib.VariantType.new('s'))
            return value.get_string() if value is not None else None

        self.id = string('id')
        self.server = string('server')
        self.peer = string('peer')
        self.auto_message = string('auto-message')
        self.screenshot = string('screenshot')
        self.identity_file = string('identity')
        self.peer_fingerprint = string('peer-fingerprint')
        self.secure = not options.contains('insecure')
        self.identity = None    # made in ChatApplication.do_handle_local_options


class ChatApplication(Gtk.Application):
    def __init__(self):
        # NON_UNIQUE: each instance is its own peer, with its own id, even
        # on one desktop; a second one must not just open a window in the
        # first.
        super().__init__(application_id=APP_ID, flags=Gio.ApplicationFlags.NON_UNIQUE)
        self.options = None
        self.status = 0

        string = GLib.OptionArg.STRING
        none = GLib.OptionFlags.NONE
        self.add_main_option('id', 0, none, string, 'The id of this peer (required)', 'ID')
        self.add_main_option('server', 0, none, string,
                             'The rendezvous server, as HOST:PORT or [IPV6-ADDRESS]:PORT '
                             '(required)', 'HOST:PORT')
        self.add_main_option('peer', 0, none, string,
                             'Reach the peer PEER; without this option, wait for a peer', 'PEER')
        self.add_main_option('auto-message', 0, none, string,
                             'Send TEXT once connected', 'TEXT')
        self.add_main_option('screenshot', 0, none, string,
                             'Once a message has arrived, save the window to FILE (PNG) and quit',
                             'FILE')
        self.add_main_option('identity', 0, none, string,
                             'Our key and certificate, in FILE (created when missing); '
                             'without it, a fresh identity each run', 'FILE')
        self.add_main_option('peer-fingerprint', 0, none, string,
                             'Talk only to a peer with this fingerprint (reaching it, '
                             'or letting it in)', 'FP')
        self.add_main_option('insecure', 0, none, GLib.OptionArg.NONE,
                             'Talk without TLS: anyone on the way reads along', None)
        self.set_option_context_parameter_string(None)
        self.set_option_context_summary(
            'A two-peer chat through a rndz rendezvous server, over TLS.')

    def do_handle_local_options(self, options):
        self.options = Options(options)
        if self.options.id is None or self.options.server is None:
            print('rndz-chat: --id and --server are required; see --help', file=sys.stderr)
            return 1
        # The rule of the "id" property of Rndz.Client; checked here because
        # the client would only complain with a critical warning
        for peer_id in (self.options.id, self.options.peer):
            if peer_id is not None and not valid_id(peer_id):
                print(f'rndz-chat: "{peer_id}" is not a valid id: it must be 1 to 64 bytes '
                      'of UTF-8 without control characters', file=sys.stderr)
                return 1
        return self.make_identity()

    def make_identity(self):
        options = self.options
        if not options.secure:
            return -1
        try:
            if options.peer_fingerprint is not None:
                options.peer_fingerprint = Rndz.fingerprint_normalize(options.peer_fingerprint)
            if options.identity_file is not None:
                options.identity = Rndz.Identity.new_from_file(options.identity_file)
            else:
                options.identity = Rndz.Identity.new()
        except GLib.Error as e:
            print(f'rndz-chat: {e.message}', file=sys.stderr)
            return 1
        return -1   # go on: register and activate

    def do_startup(self):
        Gtk.Application.do_startup(self)

        provider = Gtk.CssProvider()
        provider.load_from_data(CSS)
        Gtk.StyleContext.add_provider_for_display(
            Gdk.Display.get_default(), provider, Gtk.STYLE_PROVIDER_PRIORITY_APPLICATION)

        # Ctrl+C and kill (SIGTERM) quit cleanly, saying bye to the server
        for signum in (signal.SIGINT, signal.SIGTERM):
            GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, self.on_signal)

        quit_action = Gio.SimpleAction.new('quit', None)
        quit_action.connect('activate', lambda *args: self.quit())
        self.add_action(quit_action)
        self.set_accels_for_action('app.quit', ['<Control>q'])
        self.set_accels_for_action('window.close', ['<Control>w'])

    def do_activate(self):
        window = self.get_active_window()
        if window is None:
            window = ChatWindow(self, self.options)
        window.present()

    def do_shutdown(self):
        # Windows still open when the application quits (Ctrl+Q, a signal)
        for window in self.get_windows():
            window.stop()
        Gtk.Application.do_shutdown(self)

    def on_signal(self):
        self.quit()
        return GLib.SOURCE_CONTINUE

    def quit_with_status(self, status):
        self.status = status
        self.quit()


def main():
    app = ChatApplication()
    status = app.run(sys.argv)
    return status or app.status


if __name__ == '__main__':
    sys.exit(main())
