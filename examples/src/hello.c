/*
 * The example app of the bundled images: prints /etc/hello.txt, then its arguments and the
 * user it runs as. Freestanding (raw Linux x86-64 system calls, no libc) so that the image
 * needs nothing else: build it with
 *   gcc -static -nostdlib -Os -ffreestanding -fno-builtin -fno-asynchronous-unwind-tables -fno-stack-protector \
 *       -Wl,--build-id=none -Wl,-n -s -o examples/src/hello examples/src/hello.c
 * The binary is committed: scripts/make-examples.mjs packs it as it is, so the images (and the
 * example signature) stay byte for byte the same.
 */
typedef unsigned long u64;

static long sys(long n, long a, long b, long c) {
  long r;
  __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return r;
}

static u64 len(const char *s) {
  u64 n = 0;
  while (s[n] != 0) n++;
  return n;
}

static void out(const char *s, u64 n) { sys(1, 1, (long)s, (long)n); }
static void puts1(const char *s) { out(s, len(s)); }

static void putnum(u64 v) {
  char b[24];
  int i = 23;
  b[i] = 0;
  do {
    b[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  puts1(b + i);
}

static int run(long argc, char **argv) {
  char buf[512];
  long fd = sys(2, (long)"/etc/hello.txt", 0, 0);
  if (fd < 0) {
    puts1("hello: cannot open /etc/hello.txt\n");
    return 1;
  }
  for (;;) {
    long n = sys(0, fd, (long)buf, sizeof buf);
    if (n <= 0) break;
    out(buf, (u64)n);
  }
  puts1("args:");
  for (long i = 1; i < argc; i++) {
    puts1(" ");
    puts1(argv[i]);
  }
  puts1("\nuid: ");
  putnum((u64)sys(102, 0, 0, 0));
  puts1("\n");
  return 0;
}

__attribute__((used)) static void start_c(long *sp) {
  long argc = sp[0];
  char **argv = (char **)(sp + 1);
  sys(60, run(argc, argv), 0, 0);
}

__asm__(".globl _start\n_start:\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call start_c\n  hlt\n");
