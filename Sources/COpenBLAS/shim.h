// Debian installs cblas.h under the multiarch include directory.
#include <x86_64-linux-gnu/cblas.h>
