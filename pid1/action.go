package pid1

import "fmt"

// Action is how PID 1 ends: what a signal asks for (HandleSignals), what
// luoinit.fatal= names (Fatal), what Shutdown carries out. The zero value
// is no action.
type Action int

const (
	ActionReboot   Action = iota + 1 // reboot(2) LINUX_REBOOT_CMD_RESTART
	ActionPoweroff                   // reboot(2) LINUX_REBOOT_CMD_POWER_OFF
	ActionHalt                       // reboot(2) LINUX_REBOOT_CMD_HALT
	ActionShell                      // a shell on the console, then reboot (Fatal only)
)

var actionNames = map[Action]string{
	ActionReboot:   "reboot",
	ActionPoweroff: "poweroff",
	ActionHalt:     "halt",
	ActionShell:    "shell",
}

func (a Action) String() string {
	if s, ok := actionNames[a]; ok {
		return s
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// parseAction is the inverse of String, for luoinit.fatal=.
func parseAction(s string) (Action, bool) {
	for a, name := range actionNames {
		if s == name {
			return a, true
		}
	}
	return 0, false
}
