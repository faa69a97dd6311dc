{
  "variables": {
    "iomux_uring%": "<!(node scripts/build-config.js has-uring)",
    "iomux_kqueue%": "<!(node scripts/build-config.js has-kqueue)"
  },
  "targets": [
    {
      "target_name": "iomux",
      "sources": [
        "native/addon.cc",
        "native/registry.cc",
        "native/poller.cc",
        "native/sys.cc",
        "native/bench.cc",
        "native/backend_select.cc",
        "native/backend_poll.cc",
        "native/backend_epoll.cc",
        "native/backend_kqueue.cc",
        "native/backend_uring.cc",
        "native/probe_threads.cc",
        "native/ring.cc",
        "native/loop_embed.cc",
        "native/lab_proto.cc",
        "native/lab_serve.cc",
        "native/lab_threads.cc",
        "native/lab_thread_pool.cc",
        "native/lab_epoll.cc",
        "native/lab_uring.cc",
        "native/loadgen.cc",
        "native/test_hooks.cc",
        "native/signal_pipe.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-std=gnu++1y", "-std=gnu++17"],
      "libraries": ["-lpthread"],
      "xcode_settings": {
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "MACOSX_DEPLOYMENT_TARGET": "11.0",
        "OTHER_CPLUSPLUSFLAGS": ["-O2", "-Wall"]
      },
      "conditions": [
        ["iomux_uring==1", {
          "defines": ["IOMUX_HAVE_URING"],
          "cflags_cc": ["<!@(node scripts/build-config.js uring-cflags)"],
          "libraries": ["<!@(node scripts/build-config.js uring-libs)"]
        }],
        ["iomux_kqueue==1", {
          "defines": ["IOMUX_LIBKQUEUE"],
          "cflags_cc": ["<!@(node scripts/build-config.js kqueue-cflags)"],
          "libraries": ["<!@(node scripts/build-config.js kqueue-libs)"]
        }]
      ]
    }
  ]
}
