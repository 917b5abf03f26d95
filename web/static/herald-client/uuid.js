let lastMs = -1;
let lastSeq = 0;
/**
 * uuidv7 returns a new UUID version 7 (RFC 9562): 48 bits of Unix time in
 * milliseconds, then 74 random bits from crypto.getRandomValues. Within one
 * millisecond the 12-bit rand_a field counts up from a random start, so the
 * keys one client makes sort in the order it made them.
 */
export function uuidv7(now = Date.now()) {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    let ms = Math.max(0, Math.floor(now));
    if (ms <= lastMs) {
        ms = lastMs;
        lastSeq++;
        if (lastSeq > 0xfff) {
            ms++; // 4096 ids in one millisecond: borrow the next one
            lastSeq = b[6] & 0x07;
        }
    }
    else {
        lastSeq = ((b[6] & 0x07) << 8) | b[7]; // start low, leaving room to count
    }
    lastMs = ms;
    // 48-bit timestamp, big-endian. ms < 2^48, so division keeps it exact.
    let t = ms;
    for (let i = 5; i >= 0; i--) {
        b[i] = t % 256;
        t = Math.floor(t / 256);
    }
    b[6] = 0x70 | (lastSeq >> 8); // version 7 and the top 4 bits of rand_a
    b[7] = lastSeq & 0xff;
    b[8] = 0x80 | (b[8] & 0x3f); // variant 10
    let hex = "";
    for (const x of b)
        hex += x.toString(16).padStart(2, "0");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
