// placeholder, written by the protocol work
