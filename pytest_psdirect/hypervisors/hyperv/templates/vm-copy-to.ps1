# psdirect:vm-copy-to
# Second hop of put: the host file $HostPath (already checked against $Sha256) goes into the VM
# beside $GuestPath under a temporary name, is hashed there, and only then renamed into place.
# The host file is removed in every case.
param([string]$Key, [string]$HostPath, [string]$GuestPath, [string]$Sha256, [string]$Token)
$s = $global:PsdVmSessions[$Key]
if ($null -eq $s) { throw 'psdirect: this host runspace holds no PowerShell Direct session for the target' }
$part = $GuestPath + '.psdirect-' + $Token + '.part'
try {
    Copy-Item -ToSession $s -LiteralPath $HostPath -Destination $part -ErrorAction Stop
    Invoke-Command -Session $s -ArgumentList $part, $GuestPath, $Sha256 -ScriptBlock {
        param([string]$Part, [string]$Path, [string]$Sha256)
        $actual = (Get-FileHash -LiteralPath $Part -Algorithm SHA256).Hash.ToLowerInvariant()
        if ($actual -ne $Sha256) {
            Remove-Item -LiteralPath $Part -Force
            throw "SHA-256 of the copy in the VM is $actual, expected $Sha256"
        }
        Move-Item -LiteralPath $Part -Destination $Path -Force
    }
} finally {
    Remove-Item -LiteralPath $HostPath -Force -ErrorAction SilentlyContinue
}
