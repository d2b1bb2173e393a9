/*
 * progress.ts: the one line that says where a run is, on stderr.
 *
 * On a terminal the line is redrawn in place (carriage return, erase line) after every case, so
 * stdout keeps nothing but the final table. Piped into a file or CI log it would be noise, so then
 * only a change of phase (a new suite or round) prints a line. The time of the last update is also
 * the watchdog's heartbeat: no progress for too long means a case hung.
 */

export class Progress {
  private readonly out: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly t0 = Date.now();
  private phaseText = '';
  private detail = '';
  private done = 0;
  private total: number;
  lastBeat = Date.now();

  /* => total: how many steps (cases) the run has, for the percentage */
  constructor(total: number, out: NodeJS.WriteStream = process.stderr) {
    this.out = out;
    this.tty = out.isTTY === true;
    this.total = Math.max(1, total);
  }

  /* phase: a new phase (suite, round); printed on its own line when not a terminal */
  phase(text: string): void {
    this.phaseText = text;
    this.detail = '';
    this.beat();
    if (this.tty) this.draw();
    else this.out.write(`${this.line()}\n`);
  }

  /* step: one step (a case) done */
  step(detail: string): void {
    this.done = Math.min(this.total, this.done + 1);
    this.detail = detail;
    this.beat();
    if (this.tty) this.draw();
  }

  /* info: progress inside a long step (the soak), without counting a step */
  info(detail: string): void {
    this.detail = detail;
    this.beat();
    if (this.tty) this.draw();
  }

  /* clear: erase the line (before printing the report) */
  clear(): void {
    if (this.tty) this.out.write('\r\x1b[2K');
  }

  /* elapsed: seconds since the run started */
  get elapsed(): number {
    return (Date.now() - this.t0) / 1000;
  }

  private beat(): void {
    this.lastBeat = Date.now();
  }

  private line(): string {
    const pct = Math.floor((100 * this.done) / this.total);
    const s = Math.floor(this.elapsed);
    const clock = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
    return `[${String(pct).padStart(3)}% ${clock}] ${this.phaseText}${this.detail === '' ? '' : ` - ${this.detail}`}`;
  }

  private draw(): void {
    const cols = this.out.columns || 100;
    this.out.write(`\r\x1b[2K${this.line().slice(0, Math.max(20, cols - 1))}`);
  }
}
