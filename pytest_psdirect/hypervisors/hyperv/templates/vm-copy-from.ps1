# psdirect:vm-copy-from
# First hop of get: the VM's $GuestPath is copied to the host file $HostPath; its SHA-256 in the
# guest comes back so the whole route (guest -> host -> here) is checked end to end.
param([string]$Key, [string]$GuestPath, [string]$HostPath)
$s = $global:PsdVmSessions[$Key]
if ($null -eq $s) { throw 'psdirect: this host runspace holds no PowerShell Direct session for the target' }
Copy-Item -FromSession $s -LiteralPath $GuestPath -Destination $HostPath -ErrorAction Stop
$hash = Invoke-Command -Session $s -ArgumentList $GuestPath -ScriptBlock {
    param([string]$Path)
    (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash
}
[pscustomobject]@{ Sha256 = ([string]$hash).ToLowerInvariant() }
