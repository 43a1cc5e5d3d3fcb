// SPDX-License-Identifier: MIT
// Where gi-docgen links the types of the libraries rndz-glib builds on
baseURLs = [
    [ 'GLib', 'https://docs.gtk.org/glib/' ],
    [ 'GObject', 'https://docs.gtk.org/gobject/' ],
    [ 'Gio', 'https://docs.gtk.org/gio/' ],
]
