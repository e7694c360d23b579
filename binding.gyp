{
  "targets": [
    {
      "target_name": "ctfgen_native",
      "sources": [
        "<!@(node -p \"require('fs').readdirSync('native').filter(f => f.endsWith('.cc')).sort()\
.map(f => 'native/' + f).join(' ')\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(pkg-config --cflags-only-I openblas | sed 's/-I//g')"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions", "-O2"],
      "cflags_cc!": ["-fno-exceptions", "-O2"],
      "cflags_cc": ["-std=c++17", "-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd"],
      "libraries": ["<!@(pkg-config --libs openblas)"]
    }
  ],
  "conditions": [
    # The optional MPI addon (src/parallel/mpi.ts): built only where Open MPI's development files are installed.
    ["'<!(pkg-config --exists ompi-c && echo 1 || echo 0)'=='1'", {
      "targets": [
        {
          "target_name": "ctfgen_mpi",
          "sources": ["native/mpi/mpi.cc"],
          "include_dirs": [
            "<!(node -p \"require('node-addon-api').include_dir\")",
            "<!@(pkg-config --cflags-only-I ompi-c | sed 's/-I//g')"
          ],
          "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "OMPI_SKIP_MPICXX"],
          "cflags!": ["-fno-exceptions"],
          "cflags_cc!": ["-fno-exceptions"],
          "cflags_cc": ["-std=c++17"],
          "libraries": ["<!@(pkg-config --libs ompi-c)", "-ldl"]
        }
      ]
    }]
  ]
}
