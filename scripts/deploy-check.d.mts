export interface DeployFile {
  readonly name: string;
  readonly rawBytes: number;
  readonly gzipBytes: number;
}
export interface DeployReport {
  readonly ok: boolean;
  readonly error?: string;
  readonly rawBytes?: number;
  readonly gzipBytes?: number;
  readonly limits?: { readonly gzipBytes: number; readonly rawBytes: number };
  readonly files: readonly DeployFile[];
  readonly durableObjects?: readonly { readonly name: string; readonly className: string }[];
  readonly outdir?: string;
}
export declare const LIMITS: { readonly gzipBytes: number; readonly rawBytes: number };
export declare function deployDryRun(options?: { keep?: boolean; limits?: { gzipBytes: number; rawBytes: number } }): DeployReport;
