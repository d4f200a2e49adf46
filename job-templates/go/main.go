// One task of the job. jobrun sets JOBRUN_CONFIG (JSON), JOBRUN_INDEX, JOBRUN_COUNT,
// JOBRUN_RUN_ID and JOBRUN_ATTEMPT. Exit 0 for success.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

func main() {
	config := map[string]any{}
	if err := json.Unmarshal([]byte(os.Getenv("JOBRUN_CONFIG")), &config); err != nil {
		fmt.Fprintln(os.Stderr, "bad JOBRUN_CONFIG:", err)
		os.Exit(2)
	}
	fmt.Printf("task %s of %s: config %v\n", os.Getenv("JOBRUN_INDEX"), os.Getenv("JOBRUN_COUNT"), config)
	// ... the heavy work goes here ...
	time.Sleep(time.Second)
	fmt.Println("done")
}
