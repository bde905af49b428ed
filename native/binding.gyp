{
  "targets": [
    {
      "target_name": "ipip_socket",
      "sources": ["ipip_socket.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
